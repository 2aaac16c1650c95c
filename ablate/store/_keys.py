"""Where a store is and what a model is filed under.

A model's key is what determines its outcome: the run-level *context* (every protocol field, epochs included; the
macro; the split seed; the data's identity and split sizes; the code version; every plugin's source hash) plus the
fingerprint of the network it builds (``ablate.models.fingerprint``: two spellings of one network are one model,
and so are a baseline and a candidate that build the same network) and its training seed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

DEFAULT_NAME = "ablate.db"  # the default store, in the results folder beside the run folders
KEY_LENGTH = 20  # hex digits: collisions among millions of models are out of reach


def model_key(context: dict[str, Any], network: str, seed: int) -> str:
    """The key a model is filed under.

    Args:
        context: The run-level parts (``ablate.tune.jobs.store_context``): protocol, macro, split seed, data,
            code and plugin hashes.
        network: The network's fingerprint (``network_fingerprint(block, macro)``; a row's ``network``).
        seed: The training seed.

    Returns:
        ``KEY_LENGTH`` hex digits, equal exactly when every part is.
    """
    parts = json.dumps({**context, "network": network, "training_seed": int(seed)}, sort_keys=True, default=str)
    return hashlib.sha1(parts.encode()).hexdigest()[:KEY_LENGTH]


def store_url(where: str | os.PathLike | None, results: str | os.PathLike) -> str:
    """The SQLAlchemy URL of a store given as ``--store`` takes it: a URL (``postgresql://…``, ``sqlite:///…``), a
    SQLite file's path, or None for ``<results>/ablate.db``."""
    if where is not None and "://" in str(where):
        return str(where)
    path = Path(where) if where is not None else Path(results) / DEFAULT_NAME
    return f"sqlite:///{path.expanduser().resolve()}"
