"""Orchestration: Optuna samples blocks, Ray Tune trains them (ASHA, checkpoints, retries, resume), the
baselines train alongside as Ray tasks, and everything lands in one results table.

The same code runs on a laptop's CPUs (a local Ray) and on a GPU cluster (``address="auto"``, fractional
``gpus_per_trial``); Ray does the scheduling. Modules, in the order a run uses them:

- ``settings``: :class:`RunSettings`, what defines a run;
- ``cluster``: start or join Ray, per-trial resources;
- ``search``: Optuna samplers and storage, :class:`AblationSearch`, the study's repair after a kill;
- ``trainables``: what runs on a worker (data, costs, the candidate trial);
- ``jobs``: fixed trainings as Ray tasks (baselines under every seed, cached; confirmations of the best);
- ``progress`` / ``status``: the terminal line and a trial's status;
- ``timing``: side-by-side latency and throughput at the end;
- ``collect``: table rows and run.json;
- ``run``: :func:`run_ablation`, the driver.
"""

from ablate.errors import error_summary
from ablate.tune.jobs import Job, JobRunner, baseline_cache_key, code_version
from ablate.tune.cluster import check_address, init_ray
from ablate.tune.run import RunOutcome, build_tuner, run_ablation
from ablate.tune.search import AblationSearch, make_sampler, make_storage, repair_study
from ablate.tune.settings import RunSettings
from ablate.tune.status import classify

__all__ = [
    "AblationSearch", "Job", "JobRunner", "RunOutcome", "RunSettings", "baseline_cache_key", "build_tuner",
    "check_address", "classify", "code_version", "error_summary", "init_ray", "make_sampler", "make_storage",
    "repair_study", "run_ablation",
]
