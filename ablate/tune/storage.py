"""Where a run's Optuna study lives: a journal file in the run folder (repaired of a torn tail before anything opens
it), or a database by URL."""

from __future__ import annotations

from pathlib import Path

import optuna

from ablate.core.errors import UsageError
from ablate.core.files import cut_torn_tail, read_lines
from ablate.tune.settings import RunSettings


def make_storage(url: str | None, run_dir: Path) -> optuna.storages.BaseStorage:
    """A journal file in the run folder by default (safe with parallel writers, unlike SQLite); an RDB URL on a cluster.

    Raises:
        UsageError: The URL cannot be opened.
    """
    from optuna.storages.journal import JournalFileBackend

    path = journal_path(url, run_dir)
    if path is not None:
        repair_journal(path)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as err:  # sqlalchemy raises many kinds for a bad URL; all mean the same to the user
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(f"cannot open Optuna storage {url!r}: {message} (use e.g. sqlite:///study.db, "
                         "postgresql://user@host/db, or a .journal file path)") from None


JOURNAL_NAME = "optuna.journal"


def journal_path(url: str | None, run_dir: Path) -> Path | None:
    """The journal file a run's study lives in (None when it lives in a database)."""
    if url is None or url.endswith((".journal", ".log")):
        return Path(url) if url else run_dir / JOURNAL_NAME
    return None


def repair_journal(path: Path) -> None:
    """Make a study's journal safe to open, before Optuna (or Ray, unpickling the searcher) reads it: a torn last
    line (a kill or a full disk cut its append short) is cut off, as the epoch logs' are — the operation it
    recorded never completed, and Optuna would otherwise fail on it, or glue its next append onto it for good.

    Raises:
        UsageError: A complete line of the journal is not JSON (damaged, not merely cut short): one line naming it.
    """
    cut = cut_torn_tail(path)
    if cut:
        print(f"[ablate] {path}: cut off a torn last line ({cut} bytes) that an interrupted write left; the "
              "operation it recorded never completed", flush=True)
    read_lines(path)  # a complete line that is not JSON: one line naming the file and the line


def repair_storage(settings: RunSettings) -> None:
    """Repair the run's journal (:func:`repair_journal`), if its study lives in one, before a resume opens it."""
    path = journal_path(settings.storage, settings.run_dir)
    if path is not None:
        repair_journal(path)
