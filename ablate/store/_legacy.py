"""The baseline cache that came before the store (``results/.cache/baselines/<key>.json``), filed into it once.

Those entries were keyed by a hash of protocol, seeds, data and code that cannot be read back, and of code older
than the store (the code version is part of every key), so no run of this code would have reused them: they are
filed for ``query`` under their old key (``legacy-<key>``), never matched by a run's lookup, and the folder goes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ablate.core.errors import UsageError
from ablate.core.files import read_json
from ablate.core.schema import COMPLETED
from ablate.store._base import BaseStore, Filing, Use

LEGACY_FOLDER = Path(".cache") / "baselines"


def import_cache(store: BaseStore, results: Path) -> int:
    """File every complete entry of ``<results>/.cache/baselines`` into ``store`` (as the pseudo-run
    ``<results>/.cache``), then remove ``<results>/.cache``; a damaged entry is skipped (it was never reusable).

    Returns:
        How many entries were filed.
    """
    cache = results / ".cache"
    folder = results / LEGACY_FOLDER
    if not folder.is_dir():
        return 0
    store.register_run(str(cache), ".cache", {"imported_from": str(folder)})
    filed = 0
    for path in sorted(folder.glob("[!.]*.json")):
        try:
            outcome = read_json(path)
        except UsageError:
            continue
        row = outcome.get("row") if isinstance(outcome, dict) else None
        if not isinstance(row, dict) or row.get("status") != COMPLETED:
            continue
        key = f"legacy-{path.stem}"[:40]
        store.file(Filing(key, {"legacy_cache": path.stem}, outcome, str(cache)),
                   Use(str(cache), path.stem, key, row))
        filed += 1
    shutil.rmtree(cache, ignore_errors=True)
    if filed:
        print(f"[ablate] filed the {filed} baselines of {folder} into the store {store.url} (kept for query; "
              "trained by code older than the store, so no run reuses them) and removed the folder", flush=True)
    return filed
