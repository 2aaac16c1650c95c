"""The driver: start or join Ray, train the baselines beside the Tune trials, time every model, write the table."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import optuna
import pandas as pd
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter

from ablate.errors import error_summary
from ablate.results import CURVE_COLUMNS, read_run_json, write_run_json, write_tables
from ablate.tune.baselines import BaselineRunner
from ablate.tune.cluster import default_concurrency, init_ray, trial_resources
from ablate.tune.collect import candidate_rows, curve_frame, run_meta
from ablate.tune.progress import LIVE_BASELINES, ProgressPrinter
from ablate.tune.search import make_searcher, reconcile_study
from ablate.tune.settings import RunSettings
from ablate.tune.timing import start_timer
from ablate.tune.trainables import make_trainable


@dataclass
class RunOutcome:
    """What a finished run left: its folder, its results table, and the Ray dashboard's address (if any)."""

    run_dir: Path
    table: pd.DataFrame
    dashboard_url: str | None


def build_tuner(settings: RunSettings, resources: dict[str, float], callbacks: list, study_name: str) -> tune.Tuner:
    """A Tuner over the candidates: the searcher behind a concurrency limit, ASHA for single-objective runs."""
    concurrency = settings.max_concurrent or default_concurrency(resources)
    scheduler = None
    if settings.scheduler == "asha" and not settings.multi_objective and settings.protocol.epochs > 1:
        scheduler = ASHAScheduler(time_attr="epoch", metric="val_top1", mode="max",
                                  max_t=settings.protocol.epochs, grace_period=1, reduction_factor=2)
    return tune.Tuner(
        make_trainable(settings, resources),
        tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(make_searcher(settings, study_name),
                                                                  max_concurrent=concurrency),
                                    scheduler=scheduler, num_samples=settings.trials, reuse_actors=True),
        run_config=tune.RunConfig(name="tune", storage_path=str(settings.run_dir), verbose=0, callbacks=callbacks,
                                  failure_config=tune.FailureConfig(max_failures=settings.max_failures)),
    )


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(timestamp))


def run_ablation(settings: RunSettings, *, resume: bool = False) -> RunOutcome:
    """Run (or resume) an ablation end to end and write its results table; the caller builds the report.

    Args:
        settings: What to run and where (see :class:`RunSettings`).
        resume: Continue the run in ``settings.run_dir`` where it stopped (a killed driver included): completed
            trials are kept, interrupted ones resume from their last epoch checkpoint.

    Returns:
        The run folder, the table written to ``trials.parquet`` / ``trials.csv``, and the dashboard URL.

    Raises:
        UsageError: Ray cannot be started or reached.

    Example:
        >>> outcome = run_ablation(RunSettings(load_space("qlblock"), load_protocol("digits"),  # doctest: +SKIP
        ...                                    Path("results/demo")))
        >>> outcome.table[["name", "status", "val_top1"]]                                        # doctest: +SKIP
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = replace(settings, run_dir=settings.run_dir.resolve())  # trials run with the trial folder as cwd
    run_dir = settings.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    previous = read_run_json(run_dir)
    first_start = previous.get("started") or _iso(started)
    write_run_json(run_dir, run_meta(settings, started=first_start, finished=None,
                                     wall_seconds=previous.get("wall_seconds", 0.0)))
    dashboard_url = init_ray(settings)
    if dashboard_url:
        print(f"Ray dashboard: http://{dashboard_url} (if it asks for a token: `ray get-auth-token`)", flush=True)
    resources = trial_resources(settings)
    baselines = BaselineRunner(settings, run_dir.parent / ".cache" / "baselines")
    baselines.start(resources)
    LIVE_BASELINES[str(run_dir)] = baselines
    tune_dir = str(run_dir / "tune")
    if resume and tune.Tuner.can_restore(tune_dir):
        tuner = tune.Tuner.restore(tune_dir, make_trainable(settings, resources), resume_unfinished=True,
                                   resume_errored=False)
    else:
        progress = ProgressPrinter(run_dir, settings.trials, settings.protocol.epochs)
        tuner = build_tuner(settings, resources, [progress], study_name=run_dir.name)
    timer = start_timer(resources, at_start=True)
    rows, curves = candidate_rows(tuner.fit(), settings)
    reconcile_study(settings, run_dir.name, rows)
    for outcome in baselines.collect().values():
        rows.append(outcome["row"])
        if outcome["curves"]:
            curves.append(curve_frame(outcome["curves"], outcome["row"]))
    print(f"[ablate] timing {len({r['config'] for r in rows})} models side by side …", flush=True)
    timer = timer or start_timer(resources, at_start=False)
    try:
        timings = ray.get(timer.time.remote(sorted({r["config"] for r in rows}), settings))
    except Exception as err:  # the trained rows matter more than their timings: write them without
        print(f"[ablate] timing failed, latency/throughput left empty: {error_summary(err)}", flush=True)
        timings = {}
    ray.kill(timer)
    for row in rows:
        row.update(timings.get(row["config"], {}))
    curve_frame_all = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
    LIVE_BASELINES.pop(str(run_dir), None)
    table = write_tables(run_dir, rows, curve_frame_all)
    wall = previous.get("wall_seconds", 0.0) + time.time() - started
    write_run_json(run_dir, run_meta(settings, started=first_start, finished=_iso(time.time()), wall_seconds=wall))
    return RunOutcome(run_dir, table, dashboard_url)
