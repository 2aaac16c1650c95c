"""Optuna as the run's dashboard: every model the run trained — candidates of every phase and the baselines — as one
study, ``<run>:models``, in the run's Optuna storage, so that ``optuna-dashboard`` shows the per-FLOP question with
the baselines beside the candidates.

The search's own study (``<run>``) holds what the sampler saw: the design and search trials, their learning curves,
their costs as user attributes. The models study is a view of the finished run's table, rewritten whole at the end
of each session (a resumed run's included), never read by any sampler. Its two objectives are test top-1 (maximise)
and MACs (minimise), so the dashboard draws their Pareto front; a candidate's parameters are its axes, a baseline has
none and says so in its user attributes (``kind``, ``name``). Every trial carries its costs, seed, phase and status.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from ablate.core.formatting import cell_value
from ablate.core.schema import CANDIDATE, COMPLETED, PRUNED
from ablate.tune.settings import RunSettings
from ablate.tune.storage import make_storage

__all__ = ["MODELS_STUDY_SUFFIX", "OBJECTIVES", "USER_ATTRS", "models_study_name", "publish_models"]

MODELS_STUDY_SUFFIX = ":models"
OBJECTIVES = (("test_top1", "maximize"), ("macs", "minimize"))
# a model's columns kept as user attributes: what it is, how it trained, what it costs
USER_ATTRS = ("name", "kind", "config", "network", "phase", "seed", "status", "reason", "epochs", "val_top1",
              "test_top1", "delta_top1", "params", "macs", "elementwise_ops", "activations", "latency_ms",
              "throughput", "trial_latency_ms", "train_seconds", "symmetric", "node")


def models_study_name(run_name: str) -> str:
    return f"{run_name}{MODELS_STUDY_SUFFIX}"


def publish_models(settings: RunSettings, table: pd.DataFrame, curves: pd.DataFrame | None = None) -> str:
    """Write the run's models study anew from its table (one trial per trained model).

    Args:
        settings: The run's settings (its storage, space and folder).
        table: The run's ``trials`` table.
        curves: The run's ``curves`` table: each model's val top-1 per epoch, kept as user attributes
            ``val_top1_epoch_<k>`` (a multi-objective study has no intermediate values).

    Returns:
        The study's name.
    """
    storage = make_storage(settings.storage, settings.run_dir)
    name = models_study_name(settings.run_dir.name)
    try:
        optuna.delete_study(study_name=name, storage=storage)
    except KeyError:
        pass
    study = optuna.create_study(storage=storage, study_name=name, directions=[d for _, d in OBJECTIVES])
    with warnings.catch_warnings():  # experimental since Optuna 3.2, and what the dashboard labels its axes with
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([column for column, _ in OBJECTIVES])
    study.set_user_attr("about", "every model of the run, baselines included (ablate); the search's own trials are "
                                 f"study {settings.run_dir.name!r}")
    by_trial = {} if curves is None or not len(curves) else {
        trial_id: dict(zip(part["epoch"].astype(int), part["val_top1"]))
        for trial_id, part in curves.groupby("trial_id")}
    distributions = {axis.name: CategoricalDistribution(list(axis.choices)) for axis in settings.space.axes}
    study.add_trials([_trial(row, settings, distributions, by_trial.get(row["trial_id"], {}))
                      for row in table.to_dict("records")])
    return name


def _trial(row: dict[str, Any], settings: RunSettings, distributions: dict[str, CategoricalDistribution],
           curve: dict[int, float]) -> optuna.trial.FrozenTrial:
    """One model as a finished Optuna trial."""
    params = {}
    if row.get("kind") == CANDIDATE:
        try:
            params = settings.space.point_of(row["config"])
        except ValueError:  # a config outside the space (none today): kept, without parameters
            params = {}
    values = [_number(row.get(column)) for column, _ in OBJECTIVES]
    complete = row.get("status") == COMPLETED and all(v is not None for v in values)
    state = TrialState.COMPLETE if complete else TrialState.PRUNED if row.get("status") == PRUNED else TrialState.FAIL
    attrs = {key: cell_value(row.get(key)) for key in USER_ATTRS if cell_value(row.get(key)) is not None}
    attrs.update({f"val_top1_epoch_{epoch}": float(v) for epoch, v in sorted(curve.items()) if _number(v) is not None})
    return optuna.trial.create_trial(state=state, values=values if complete else None,
                                     params=params, distributions={k: distributions[k] for k in params},
                                     user_attrs=attrs)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else None
