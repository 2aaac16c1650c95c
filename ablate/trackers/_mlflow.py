"""MLflow: one experiment per run (named after the run), one MLflow run per training — Ray Tune's
``MLflowLoggerCallback`` for the trials, MLflow's client for the Ray-task trainings, tagged alike (``ablate.run``,
``ablate.label``). The tracking store is ``MLFLOW_TRACKING_URI`` where set, else a SQLite file beside the runs
(``results/mlflow.db``: MLflow 3 keeps its plain-folder store for old data only)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ablate.core.schema import Status
from ablate.trackers._base import Tracker, curve_points, final_metrics, training_fields

if TYPE_CHECKING:
    from ray.tune import Callback

    from ablate.tune.collect import Outcome
    from ablate.tune.settings import RunSettings


class MLflowTracker(Tracker):
    name, module, extra = "mlflow", "mlflow", "mlflow"

    def __init__(self, settings: RunSettings):
        super().__init__(settings)
        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{settings.run_dir.parent.resolve()}/mlflow.db"
        self._client = None

    @property
    def tags(self) -> dict[str, str]:
        return {"ablate.run": self.run_name, "ablate.run_dir": str(self.settings.run_dir)}

    def tune_callback(self) -> Callback:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        return MLflowLoggerCallback(tracking_uri=self.uri, experiment_name=self.run_name, tags=self.tags)

    def client(self):
        """MLflow's client on the run's experiment (created on first use)."""
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
            found = self._client.get_experiment_by_name(self.run_name)
            self._experiment = found.experiment_id if found else self._client.create_experiment(self.run_name)
        return self._client

    def _written(self, label: str) -> bool:
        client = self.client()
        return bool(client.search_runs([self._experiment], filter_string=f"tags.`ablate.label` = '{label}'",
                                       max_results=1))

    def _write(self, label: str, outcome: Outcome, reused: bool) -> None:
        from mlflow.entities import Metric, Param, RunTag

        client, row = self.client(), outcome["row"]
        run = client.create_run(self._experiment, run_name=label,
                                tags={**self.tags, "ablate.label": label, "ablate.reused": str(reused)})
        metrics = [Metric(key, value, 0, epoch) for epoch, point in curve_points(outcome)
                   for key, value in point.items()]
        last = max((epoch for epoch, _ in curve_points(outcome)), default=0)
        metrics += [Metric(key, value, 0, last) for key, value in final_metrics(row).items()]
        params = [Param(key, str(value)) for key, value in training_fields(row).items()]
        client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=[RunTag("ablate.kind", row["kind"])])
        client.set_terminated(run.info.run_id, status="FINISHED" if row.get("status") == Status.COMPLETED else "FAILED")

    def where(self) -> str:
        return f"mlflow ui --backend-store-uri {self.uri} (experiment {self.run_name!r})"
