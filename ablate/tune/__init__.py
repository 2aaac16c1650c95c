"""Orchestration: Optuna samples blocks, Ray Tune trains them (ASHA, checkpoints, retries, resume), the
baselines train alongside as Ray tasks, and everything lands in one results table.

The same code runs on a laptop's CPUs (a local Ray) and on a GPU cluster (``address="auto"``, fractional
``gpus_per_trial``); Ray does the scheduling. Modules, in the order a run uses them:

- ``settings``: :class:`RunSettings`, what defines a run;
- ``cluster``: start or join Ray, per-trial resources;
- ``search``: Optuna samplers and storage, :class:`AblationSearch`, the study's repair after a kill;
- ``trainables``: what runs on a worker (data, costs, the candidate trial);
- ``jobs``: fixed trainings as Ray tasks (baselines under every seed, cached; confirmations of the best);
- ``faults``: a training whose worker died, retried from its checkpoint, or the one line that stops the run;
- ``progress`` / ``status``: the terminal line and a trial's status;
- ``timing``: side-by-side latency and throughput at the end;
- ``collect``: table rows and run.json;
- ``run``: :func:`run_ablation`, the driver.
"""

from __future__ import annotations

import importlib
from typing import Any

# name → module: imported on first use (PEP 562), so that reading a run folder (``ablate.tune.record``,
# ``ablate.tune.status``) needs neither Ray nor torch
_EXPORTS = {
    "AblationSearch": "search", "Job": "jobs", "JobRunner": "jobs", "RunOutcome": "run", "RunSettings": "settings",
    "baseline_cache_key": "jobs", "build_tuner": "run", "check_address": "cluster", "classify": "status",
    "code_version": "jobs", "error_summary": "ablate.core.errors", "init_ray": "cluster", "make_sampler": "search",
    "make_storage": "storage", "repair_study": "search", "run_ablation": "run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ablate.tune' has no attribute {name!r}")
    module = _EXPORTS[name]
    value = getattr(importlib.import_module(module if "." in module else f"ablate.tune.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
