"""TensorBoard: Ray Tune's ``TBXLoggerCallback`` for the trials (in each trial's folder under ``tune/``), tensorboardX's
``SummaryWriter`` for the Ray-task trainings (``tensorboard/<training>/``), under the same tags, so that
``tensorboard --logdir results/<run>`` draws every training of the run on the same charts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ablate.trackers._base import Tracker, curve_points, final_metrics, training_fields

if TYPE_CHECKING:
    from ray.tune import Callback

    from ablate.tune.collect import Outcome

TAG = "ray/tune/"  # the prefix TBXLoggerCallback gives every result key


class TensorBoardTracker(Tracker):
    name, module, extra = "tensorboard", "tensorboardX", "tensorboard"

    def tune_callback(self) -> Callback:
        from ray.tune.logger import TBXLoggerCallback

        return TBXLoggerCallback()

    def folder(self, label: str) -> Path:
        return self.settings.run_dir / "tensorboard" / label.replace(" ", "_")

    def _written(self, label: str) -> bool:
        folder = self.folder(label)
        return folder.is_dir() and any(folder.rglob("events.out.tfevents.*"))

    def _write(self, label: str, outcome: Outcome, reused: bool) -> None:
        from tensorboardX import SummaryWriter

        row = outcome["row"]
        with SummaryWriter(str(self.folder(label))) as writer:
            for epoch, metrics in curve_points(outcome):
                for key, value in metrics.items():
                    writer.add_scalar(TAG + key, value, epoch)
            final = final_metrics(row)
            last = max((epoch for epoch, _ in curve_points(outcome)), default=0)
            for key, value in final.items():
                writer.add_scalar(TAG + key, value, last)
            writer.add_hparams({**training_fields(row), "reused": reused}, {TAG + k: v for k, v in final.items()},
                               name="hparams")

    def where(self) -> str:
        return f"tensorboard --logdir {self.settings.run_dir}"
