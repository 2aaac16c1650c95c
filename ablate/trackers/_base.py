"""What every tracker does: hand Ray Tune its callback for the trials, and write a finished Ray-task training."""

from __future__ import annotations

import abc
import math
from typing import TYPE_CHECKING, Any, ClassVar

from ablate.core.errors import error_summary
from ablate.core.formatting import cell_value

if TYPE_CHECKING:
    from ray.tune import Callback

    from ablate.tune.collect import Outcome
    from ablate.tune.settings import RunSettings

# a training's columns a tracker keeps as its parameters: what it is and what it costs
FIELDS = ("name", "kind", "config", "network", "phase", "seed", "status", "params", "macs", "elementwise_ops",
          "activations", "node")
# its final numbers, logged as metrics at its last epoch
FINAL_METRICS = ("val_top1", "val_top5", "test_top1", "train_seconds", "symmetry_gap")
# the per-epoch curve columns logged as metrics (step = epoch), named as Tune's results name them
CURVE_METRICS = ("train_loss", "val_loss", "val_top1", "val_top5", "lr", "epoch_seconds", "images_per_second")


def training_fields(row: dict[str, Any]) -> dict[str, Any]:
    """A table row's identity and costs as plain values (missing and non-finite ones left out)."""
    return {key: cell_value(row.get(key)) for key in FIELDS if cell_value(row.get(key)) is not None}


def final_metrics(row: dict[str, Any]) -> dict[str, float]:
    return {key: float(row[key]) for key in FINAL_METRICS if cell_value(row.get(key)) is not None
            and isinstance(row[key], (int, float))}


def curve_points(outcome: Outcome) -> list[tuple[int, dict[str, float]]]:
    """(epoch, metrics) for each epoch of a training's curve."""
    points = []
    for entry in outcome.get("curves") or ():
        metrics = {k: float(entry[k]) for k in CURVE_METRICS
                   if isinstance(entry.get(k), (int, float)) and math.isfinite(entry[k])}
        if isinstance(entry.get("epoch"), (int, float)):
            points.append((int(entry["epoch"]), metrics))
    return points


class Tracker(abc.ABC):
    """One tracker of a run (see the package docstring).

    Args:
        settings: The run's settings (its folder and name).
    """

    name: ClassVar[str]  # as ``--tracker`` names it
    module: ClassVar[str]  # the package it needs
    extra: ClassVar[str]  # the pip extra that installs it

    def __init__(self, settings: RunSettings):
        self.settings = settings
        self.run_name = settings.run_dir.name
        self.broken = False

    @abc.abstractmethod
    def tune_callback(self) -> Callback:
        """Ray Tune's own callback that writes the Tune trials."""

    @abc.abstractmethod
    def _write(self, label: str, outcome: Outcome, reused: bool) -> None:
        """Write one finished training (its parameters, its curve, its final numbers)."""

    @abc.abstractmethod
    def _written(self, label: str) -> bool:
        """Whether this training is written already (a resumed run collects its finished jobs again)."""

    @abc.abstractmethod
    def where(self) -> str:
        """The command that opens this run's entries."""

    def log_training(self, label: str, outcome: Outcome, reused: bool = False) -> None:
        """Write a finished Ray-task training once; a tracker that fails is turned off with one line.

        Args:
            label: The training's name (``Job.label``: ``baseline ResNet50 s2``).
            outcome: Its filed outcome (row, curve, per-image evidence).
            reused: Taken from the baseline cache rather than trained by this run.
        """
        if self.broken:
            return
        try:
            if not self._written(label):
                self._write(label, outcome, reused)
        except Exception as err:  # a tracker is a view: the run's own record never depends on it
            self.broken = True
            print(f"[ablate] warning: tracker {self.name} failed and is off for the rest of this run: "
                  f"{error_summary(err)}", flush=True)
