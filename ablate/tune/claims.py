"""Claims on the baseline cache: runs that share ``results/.cache/baselines`` train each baseline once between them.

A run about to train a baseline the cache lacks first claims it: ``<key>.claim`` beside the entry it will write,
created exclusively (``O_EXCL``), holding the claiming driver's host and pid. A second run that finds the claim
does not train the baseline again: a Ray task with no CPU of its own (:func:`wait_for_entry`) waits until the
entry appears and hands it over — or until the claim is released without one (the claimant's training failed, or
its driver died: a claim whose pid is gone on its own host is stale), and the second run then claims and trains it
itself. The claimant releases its claim as the training ends, whatever the outcome.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

from ablate.core.errors import UsageError
from ablate.core.files import read_json

POLL_S = 2.0


def claim_file(entry: Path) -> Path:
    """The claim beside a cache entry."""
    return entry.with_suffix(".claim")


def _owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _stale(claim: Path) -> bool:
    """A claim whose driver is gone: on this host, its pid no longer runs (a claim from another host is trusted)."""
    try:
        holder = json.loads(claim.read_text())
    except (OSError, ValueError):
        return not claim.exists()  # gone, or torn as it was written: the claimant died writing it
    if holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, TypeError, ValueError):
        return False
    return False


def claim(entry: Path) -> bool:
    """Claim the training of a cache entry; False when another live run holds the claim.

    A stale claim (:func:`_stale`) is taken over.
    """
    path = claim_file(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _stale(path):
                return False
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(handle, "w") as file:
            json.dump(_owner(), file)
        return True
    return False


def release(entry: Path) -> None:
    """Release this process's claim of a cache entry (another's is left alone)."""
    path = claim_file(entry)
    try:
        if json.loads(path.read_text()) == _owner():
            path.unlink()
    except (OSError, ValueError):
        pass


def wait_for_entry(entry: Path, usable: Callable[[dict[str, Any]], bool], poll_s: float = POLL_S
                   ) -> dict[str, Any] | None:
    """Wait for the run that claimed ``entry`` to write it: the entry once it is there and usable, or None once the
    claim is gone (released, or stale) without one — the caller then claims and trains it itself."""
    while True:
        if entry.is_file():
            try:
                outcome = read_json(entry)
            except UsageError:
                outcome = None
            if outcome is not None and usable(outcome):
                return outcome
        path = claim_file(entry)
        if not path.exists() or _stale(path):  # released: the entry, if the claimant wrote one first, or None
            return read_json(entry) if entry.is_file() and _usable(entry, usable) else None
        time.sleep(poll_s)


def _usable(entry: Path, usable: Callable[[dict[str, Any]], bool]) -> bool:
    try:
        return usable(read_json(entry))
    except UsageError:
        return False
