"""The store's interface: what any backend keeps and answers, in the style of Optuna's ``BaseStorage``.

A *filing* is one trained model under its key (what determines its outcome: :func:`ablate.store.model_key`): its
table row, learning curve and per-image hits (an ``Outcome``, as ``records/<trial id>.json`` holds it), the key's
parts, and the run that trained it. A *use* is one run's row for a model: the run, its trial id there, its phase,
and whether it was reused from another run. A *claim* says that a run is training a key, so that another run
sharing the store waits for that filing instead of training the model again.
"""

from __future__ import annotations

import abc
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

Outcome = dict[str, Any]

LEASE_S = 300.0  # a claim whose holder has not renewed it for this long is stale, wherever its holder runs


@dataclass(frozen=True)
class Filing:
    """One trained model as the store keeps it.

    Attributes:
        key: The model key (:func:`ablate.store.model_key`).
        context: The key's run-level parts (protocol, macro, split seed, data, code and plugin hashes).
        outcome: ``row``, ``curves`` and ``predictions`` as a run's record files them.
        trained_in: The run (its folder's path) whose training filed it first.
    """

    key: str
    context: dict[str, Any]
    outcome: Outcome
    trained_in: str


@dataclass(frozen=True)
class Use:
    """One run's row for a filed model.

    Attributes:
        run: The run (its folder's path).
        trial_id: The model's trial id in that run.
        key: The model key.
        row: The run's table row of the model (its own trial id, kind, name, phase; the model's measurements).
        reused_from: The run the model was trained in, when this run reused it rather than trained it ("" if not).
    """

    run: str
    trial_id: str
    key: str
    row: dict[str, Any]
    reused_from: str = ""


@dataclass(frozen=True)
class Owner:
    """Who holds a claim: a run's driver (host and pid), and when it last renewed the claim."""

    run: str
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    heartbeat: float = field(default_factory=time.time)

    def same(self, other: "Owner") -> bool:
        """Whether ``other`` is this very process of this run (heartbeats aside)."""
        return (self.run, self.host, self.pid) == (other.run, other.host, other.pid)

    def stale(self, now: float | None = None, lease_s: float = LEASE_S) -> bool:
        """Whether this claim's holder is gone: its pid no longer runs on this host, or (any host) it has not
        renewed the claim for ``lease_s`` seconds — a claim never blocks another run for longer than that."""
        now = time.time() if now is None else now
        if now - self.heartbeat > lease_s:
            return True
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except (PermissionError, OverflowError, ValueError):
            return False
        return False


class BaseStore(abc.ABC):
    """Where every trained model is kept once, across runs; any backend implements these methods.

    A store must be safe for several processes (a run's Ray workers, several runs) filing at once: filing a key
    that is already filed keeps the first filing and is no error; a filing is one transaction (a process killed
    mid-filing leaves nothing half-written). A store pickles as its address, so Ray workers reopen it.
    """

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """The store's address, as ``--store`` takes it (a password left out)."""

    @abc.abstractmethod
    def file(self, filing: Filing, use: Use | None = None) -> bool:
        """File a model, unless its key is filed already, and record a run's use of it (replacing that run's
        earlier use of the same trial id), in one transaction.

        Returns:
            Whether this call filed the model (False: it was there).
        """

    @abc.abstractmethod
    def get(self, key: str) -> Filing | None:
        """The filing of ``key``, or None."""

    @abc.abstractmethod
    def register_run(self, run: str, name: str, meta: dict[str, Any]) -> None:
        """Record (or update) a run: its folder's path, its name and its settings (run.json's)."""

    @abc.abstractmethod
    def runs(self) -> list[dict[str, Any]]:
        """Every registered run, the oldest first: dicts with ``run`` (its folder's path), ``name`` and ``meta``
        (its run.json as registered; {} when none was)."""

    def study_runs(self, study: str) -> list[dict[str, Any]]:
        """The runs filed under ``study`` (``run --study NAME``: run.json's ``study``), the oldest first."""
        return [run for run in self.runs() if run["meta"].get("study") == study]

    @abc.abstractmethod
    def claim(self, key: str, owner: Owner) -> bool:
        """Claim the training of ``key`` for ``owner``: True when it now holds the claim (a stale claim is taken
        over, and a claim ``owner`` holds already is renewed), False when another live holder has it."""

    @abc.abstractmethod
    def holder(self, key: str) -> Owner | None:
        """Who claims ``key`` (None: nobody)."""

    @abc.abstractmethod
    def release(self, key: str, owner: Owner) -> None:
        """Drop ``owner``'s claim of ``key`` (another's is left alone)."""

    @abc.abstractmethod
    def renew(self, owner: Owner) -> int:
        """Renew every claim ``owner`` holds (their heartbeat set to now); returns how many it holds."""

    @abc.abstractmethod
    def uses(self, where: dict[str, list[Any]] | None = None) -> list[dict[str, Any]]:
        """Every use, joined with its model's key parts and its run's name: dicts with ``run``, ``run_name``,
        ``trial_id``, ``key``, ``reused_from``, ``row`` (the use's row) and the model's ``network``, ``macro``,
        ``protocol``, ``dataset``, ``epochs``, ``split_seed``, ``seed``, ``trained_in`` and ``context`` (the key's
        run-level parts).

        Args:
            where: Column → accepted values, on those columns (``run`` matches a run's path or its name).
        """

    @abc.abstractmethod
    def outcomes(self, run: str) -> dict[str, Outcome]:
        """Every model ``run`` used, by its trial id there: the run's row, the model's curve and per-image hits,
        and ``reused_from`` — what the run's ``records/`` hold, read from the store."""

    def close(self) -> None:
        """Release connections (a store reopens them when used again)."""
