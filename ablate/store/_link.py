"""A run's link to the store: the store, the run it files for, and the run-level key parts; what a run's record
files every model through (its Ray workers too: the link pickles as the store's address)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.core.schema import COMPLETED
from ablate.store._base import BaseStore, Filing, Outcome, Use
from ablate.store._keys import model_key

REUSED_FROM = "reused_from"  # an outcome's key (and a table column) naming the run a reused model was trained in


@dataclass(frozen=True)
class RunLink:
    """One run's way into a store.

    Attributes:
        store: The store.
        run: The run's folder (its absolute path: the run's identity in the store).
        context: The run-level key parts (``ablate.tune.jobs.store_context``).
    """

    store: BaseStore
    run: str
    context: dict[str, Any]

    @property
    def name(self) -> str:
        return Path(self.run).name

    def key(self, network: str, seed: int) -> str:
        """The key of the model this run trains from ``network`` under training seed ``seed``."""
        return model_key(self.context, network, seed)

    def find(self, network: str, seed: int) -> Filing | None:
        """The filed model this run would train from ``network`` under ``seed``, or None."""
        return self.store.get(self.key(network, seed))

    def file(self, outcome: Outcome) -> bool:
        """File a completed model (kept once: a key filed already stays as it is) and this run's use of it; an
        outcome that did not complete is not filed (the store keeps trained models, and a failure may be the
        machine's). A reused outcome (``reused_from`` set) links the run to the filing it came from.

        Returns:
            Whether this call filed the model.
        """
        row = outcome["row"]
        if row.get("status") != COMPLETED or not row.get("network"):
            return False
        key = self.key(row["network"], row["seed"])
        model = {k: outcome.get(k) for k in ("row", "curves", "predictions")}
        use = Use(self.run, row["trial_id"], key, row, outcome.get(REUSED_FROM) or "")
        return self.store.file(Filing(key, self.context, model, self.run), use)
