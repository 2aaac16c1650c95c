"""Weights & Biases: one W&B run per training, grouped by the ablate run — Ray Tune's ``WandbLoggerCallback`` for
the trials, ``wandb.init`` for the Ray-task trainings. The project is ``WANDB_PROJECT`` where set, else ``ablate``;
without an API key W&B writes offline (``WANDB_MODE=offline``), to sync later with ``wandb sync``."""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

from ablate.core.schema import Status
from ablate.trackers._base import Tracker, curve_points, final_metrics, training_fields

if TYPE_CHECKING:
    from ray.tune import Callback

    from ablate.tune.collect import Outcome


class WandbTracker(Tracker):
    name, module, extra = "wandb", "wandb", "wandb"

    @property
    def project(self) -> str:
        return os.environ.get("WANDB_PROJECT", "ablate")

    def tune_callback(self) -> Callback:
        from ray.air.integrations.wandb import WandbLoggerCallback

        return WandbLoggerCallback(project=self.project, group=self.run_name, dir=str(self.settings.run_dir))

    def _id(self, label: str) -> str:
        """A W&B run id fixed by the run folder and the training: a resumed run writes the same W&B run again."""
        return hashlib.sha1(f"{self.settings.run_dir}|{label}".encode()).hexdigest()[:16]

    def _written(self, label: str) -> bool:
        return False  # the fixed id makes writing twice an overwrite of the same W&B run

    def _write(self, label: str, outcome: Outcome, reused: bool) -> None:
        import wandb

        row = outcome["row"]
        run = wandb.init(project=self.project, group=self.run_name, name=label, id=self._id(label), resume="allow",
                         config={**training_fields(row), "reused": reused}, dir=str(self.settings.run_dir),
                         reinit="create_new", settings=wandb.Settings(console="off", silent=True))  # the driver's
        try:
            for epoch, metrics in curve_points(outcome):
                run.log({**metrics, "epoch": epoch}, step=epoch)
            run.summary.update(final_metrics(row))
        finally:
            run.finish(exit_code=0 if row.get("status") == Status.COMPLETED else 1)

    def where(self) -> str:
        return (f"W&B project {self.project!r}, group {self.run_name!r} "
                f"(offline runs: wandb sync {self.settings.run_dir}/wandb)")
