"""Experiment trackers a lab already watches: every training of a run appears in each tracker the run names.

Tune's trials go through Ray Tune's own logger callbacks (``TBXLoggerCallback``, ``MLflowLoggerCallback``,
``WandbLoggerCallback``); the trainings that run as Ray tasks beside them — baselines, confirmations, every model of
an ablation design — are written by the driver with the same library, as each ends (its whole curve at once, with
its costs and test top-1), named as Ray names the task (``baseline ResNet50 s2``). A reused (cached) baseline is
written too. Each integration is a module of its own, registered by name in :data:`TRACKERS`.

Trackers are optional: a run names them with ``--tracker`` (TensorBoard by default where ``tensorboardX`` is
installed); one whose package is missing is refused in one line before anything starts, one that fails mid-run is
turned off with one line, and the run goes on.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from ablate.core.errors import UsageError
from ablate.core.registry import lookup
from ablate.trackers._base import Tracker, training_fields
from ablate.trackers._mlflow import MLflowTracker
from ablate.trackers._tensorboard import TensorBoardTracker
from ablate.trackers._wandb import WandbTracker

if TYPE_CHECKING:
    from ablate.tune.settings import RunSettings

__all__ = ["TRACKERS", "Tracker", "check_trackers", "default_trackers", "open_trackers", "training_fields"]

TRACKERS: dict[str, type[Tracker]] = {t.name: t for t in (TensorBoardTracker, MLflowTracker, WandbTracker)}


def default_trackers() -> tuple[str, ...]:
    """TensorBoard where its writer is installed (it comes with Ray Tune), else none."""
    return ("tensorboard",) if importlib.util.find_spec(TensorBoardTracker.module) else ()


def check_trackers(names: tuple[str, ...]) -> None:
    """Refuse an unknown tracker, or one whose package is not installed, in one line.

    Raises:
        UsageError: naming the tracker and the install command.
    """
    for name in names:
        tracker = lookup(TRACKERS, name, "tracker", UsageError)
        if importlib.util.find_spec(tracker.module) is None:
            raise UsageError(f"--tracker {name} needs the {tracker.module} package: pip install "
                             f"'ablate-blocks[{tracker.extra}]' (or drop --tracker {name})")


def open_trackers(settings: RunSettings) -> list[Tracker]:
    """The run's trackers, checked (:func:`check_trackers`) and opened."""
    check_trackers(settings.trackers)
    return [TRACKERS[name](settings) for name in settings.trackers]
