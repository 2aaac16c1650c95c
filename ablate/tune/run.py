"""The driver: start or join Ray, train the design (and search) on Tune with the baselines beside it, confirm the
best candidates under more training seeds, time every model side by side, and write the tables."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter

from ablate.core.errors import UsageError, error_summary
from ablate.core.files import DiskFull, find_disk_full
from ablate.core.formatting import compact_duration
from ablate.core.schema import SEARCH
from ablate.data import load_protocol_data
from ablate.data.splits import SPLITS
from ablate.models import BASELINE_BY_TIMM_NAME, BlockConfig
from ablate.planning import plan_line, plan_run
from ablate.protocols import cpu_fallback_line
from ablate.results import analysis_of, load, load_curves, read_run_json, write_run_json
from ablate.space.loader import unnamed_axes_line
from ablate.space.networks import space_networks
from ablate.store import RunLink, import_cache, open_store
from ablate.trackers import open_trackers
from ablate.tune.cluster import (
    MemoryBudget,
    concurrency_line,
    default_concurrency,
    init_ray,
    measure_memory,
    trial_resources,
)
from ablate.tune.collect import run_meta
from ablate.tune.dashboard import publish_models
from ablate.tune.faults import WorkerLost, find_lost, stop_line, tune_worker_faults, worker_death
from ablate.tune.interrupt import cancel, fit
from ablate.tune.jobs import (
    JobRunner,
    ablation_jobs,
    baseline_jobs,
    confirmation_jobs,
    longest_first,
    store_context,
)
from ablate.tune.memory import check_run
from ablate.tune.progress import Eta, RunProgress
from ablate.tune.record import RunRecord, earlier_lives_seconds
from ablate.tune.search import PHASE, make_searcher, reconcile_study, run_design
from ablate.tune.settings import RunSettings
from ablate.tune.storage import repair_storage
from ablate.tune.timing import timing_task
from ablate.tune.trainables import TrialLabel, make_trainable


@dataclass
class RunOutcome:
    """What a finished run left: its folder, its results table, and the Ray dashboard's address."""

    run_dir: Path
    table: pd.DataFrame
    dashboard_url: str | None


class DesignExemptASHA(ASHAScheduler):
    """ASHA that stops only the sampler's trials: the design's configs are trained to the full budget, so that the
    run keeps an unconfounded core however the search goes; their results still set the rungs' bars."""

    def on_trial_result(self, tune_controller, trial, result: dict[str, Any]) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        return action if trial.config.get(PHASE) == SEARCH else TrialScheduler.CONTINUE


def build_tuner(settings: RunSettings, resources: dict[str, float], job_ids: list[str] | dict[str, str],
                study_name: str, eta: Eta | None = None) -> tune.Tuner:
    """A Tuner over the candidates: the searcher (design first, twins trained once) behind a concurrency limit, ASHA
    for single-objective search runs, the progress callback that files each trial."""
    concurrency = settings.max_concurrent or default_concurrency(resources)
    searcher = make_searcher(settings, study_name)
    # balanced and grid train their design and nothing else; a search samples up to --trials distinct networks
    trials = searcher.design_size if settings.design != "search" else min(settings.trials, searcher.distinct_points)
    scheduler = None
    if settings.scheduler == "asha" and not settings.multi_objective and settings.protocol.epochs > 1:
        scheduler = DesignExemptASHA(time_attr="epoch", metric="val_top1", mode="max",
                                     max_t=settings.protocol.epochs, grace_period=1, reduction_factor=2)
    return tune.Tuner(
        make_trainable(settings, resources),
        tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=concurrency),
                                    scheduler=scheduler, num_samples=trials, reuse_actors=True,
                                    trial_name_creator=TrialLabel(settings.space, settings.seed)),
        run_config=tune.RunConfig(name="tune", storage_path=str(settings.run_dir), verbose=0,
                                  callbacks=[RunProgress(settings, job_ids, trials, eta),
                                             *(t.tune_callback() for t in open_trackers(settings))],
                                  failure_config=tune.FailureConfig(max_failures=settings.max_failures)),
    )


def _publish(settings: RunSettings, table: pd.DataFrame) -> None:
    """Every model of the run as the Optuna study ``<run>:models`` (:mod:`ablate.tune.dashboard`); the run's
    results never depend on it, so a storage that refuses it costs one line."""
    try:
        study = publish_models(settings, table, load_curves(settings.run_dir))
    except Exception as err:
        print(f"[ablate] warning: the models study for optuna-dashboard was not written: {error_summary(err)}",
              flush=True)
        return
    where = settings.storage or settings.run_dir / "optuna.journal"
    print(f"[ablate] optuna-dashboard {where} shows every model, baselines included, as study {study!r}", flush=True)


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(timestamp))


def _with_data(settings: RunSettings) -> tuple[RunSettings, dict[str, int]]:
    """The settings with the space resolved for the run's data (widths matched to equal MACs, where asked), and the
    sizes of the data splits (the noise floor of the comparisons depends on the validation split's)."""
    data = load_protocol_data(settings.protocol, data_dir=settings.data_dir, device="cpu", seed=settings.seed)
    if settings.space.width_match:
        print(f"[ablate] solving the width of each block for equal {settings.space.width_match} …", flush=True)
    space = settings.space.resolved(settings.macro, data.num_classes, data.input_size)
    if settings.address is None:  # the trainings run here: refuse a model this machine cannot hold, before anything
        check_run(replace(settings, space=space), data.num_classes, data.input_size)  # is written (on a cluster the
        # driver's memory says nothing of the nodes'; there each training reserves what its worker measured)
    return replace(settings, space=space), {split: data.size(split) for split in SPLITS}


def _finish_jobs(jobs: JobRunner, record: RunRecord, what: str = "baselines and confirmations",
                 eta: Eta | None = None, models: int = 0) -> None:
    """Wait for the Ray-task trainings still running, rewriting the tables as they end when it is their turn
    (``RunRecord.write(now=False)``: a rewrite reads every record, and on a 2-core machine the driver's CPU is the
    workers'), and once more when the last one has ended. Each model is in ``records/`` the moment it ends either
    way. Each line says the phase's ETA (``eta``), and the run's: the side-by-side timing of ``models`` models
    follows."""
    announced = -1
    eta = eta or Eta({}, 1)
    while jobs.pending:
        ray.wait(list(jobs.pending.values()), num_returns=1, timeout=5.0)
        if jobs.collect(wait=False):
            record.write(jobs=(jobs.done_count(), len(jobs.jobs)), now=not jobs.pending)
        else:
            record.write_due(lambda: (None, (jobs.done_count(), len(jobs.jobs))))
        done = jobs.done_count()
        if done != announced:
            for job, outcome in jobs.results.items():
                eta.ended(job.trial_id, str(job.block), outcome["row"])
            left = eta.text([str(job.block) for job in jobs.pending], models_timed=models) if jobs.pending else ""
            print(f"[ablate] {what} {done}/{len(jobs.jobs)} done{left}", flush=True)
            announced = done


def _train_everything(settings: RunSettings, resume: bool, resources: dict[str, float], jobs: JobRunner) -> None:
    """The design (and search) on Tune, the confirmations, and the side-by-side timing, all filed in the run's
    record (Tune's trials by the progress callback, the jobs by their workers) and written as its tables."""
    run_dir, record = settings.run_dir, RunRecord(settings.run_dir)
    tune_dir = str(run_dir / "tune")
    meta = read_run_json(run_dir)
    eta = Eta.of(meta.get("plan"), meta.get("workers") or 1)  # the plan's per-model seconds here
    if settings.ablation:  # nothing to search or stop early: every training is a Ray task, the longest first
        _finish_jobs(jobs, record, "ablation trainings (configs and baselines × seeds)", eta,
                     len({str(job.block) for job in jobs.jobs}))
    elif resume and tune.Tuner.can_restore(tune_dir):
        repair_storage(settings)  # before Ray unpickles the searcher, whose study reads the journal
        record.file_missing(settings, fit(tune.Tuner.restore(tune_dir, make_trainable(settings, resources),
                                                             resume_unfinished=True, resume_errored=False)))
    else:
        if resume:
            record.check_tune_state(tune_dir)
        record.file_missing(settings, fit(build_tuner(settings, resources, {job.trial_id: str(job.block) for job in
                                                                            jobs.jobs}, study_name=run_dir.name,
                                                      eta=eta)))
    if not settings.ablation:  # the study and the record agree (a tell lost with a torn journal tail)
        reconcile_study(settings, record.rows())
    jobs.collect(wait=False)
    confirmations = confirmation_jobs(settings, record.rows())
    if confirmations:
        print(f"[ablate] confirming the best {settings.confirm} candidates under {settings.seeds} fresh training "
              f"seeds {list(settings.confirmation_seeds)} ({len(confirmations)} more trainings) …", flush=True)
        jobs.submit(confirmations, resources)
    record.write(jobs=(jobs.done_count(), len(jobs.jobs)))
    _finish_jobs(jobs, record, eta=eta, models=len({row["config"] for row in record.rows()} |
                                                   {str(job.block) for job in jobs.jobs}))
    configs = sorted({row["config"] for row in record.rows()})
    print(f"[ablate] timing {len(configs)} models side by side … (ETA {compact_duration(eta.left([], len(configs)))})",
          flush=True)
    try:
        timings = ray.get(timing_task(resources, len(configs)).remote(configs, settings))
    except Exception as err:  # the trained rows matter more than their timings: write them without
        print(f"[ablate] timing failed, latency/throughput kept from an earlier session where it timed them, "
              f"else left empty: {error_summary(err)}", flush=True)
        timings = {}
    record.save_timings(timings)
    record.write(jobs=(jobs.done_count(), len(jobs.jobs)))


def run_ablation(settings: RunSettings, *, resume: bool = False) -> RunOutcome:
    """Run (or resume) an ablation end to end and write its results tables; the caller builds the report.

    Args:
        settings: What to run and where (see :class:`RunSettings`).
        resume: Continue the run in ``settings.run_dir`` where it stopped (a killed driver included): completed
            trials are kept, interrupted ones resume from their last epoch checkpoint.

    Returns:
        The run folder, the table written to ``trials.parquet`` / ``trials.csv``, and the dashboard URL.

    Raises:
        UsageError: Ray cannot be started or reached, or a resumed run is not in the folder it was started in.

    Example:
        >>> outcome = run_ablation(RunSettings(load_space("qlblock"), load_protocol("digits"),  # doctest: +SKIP
        ...                                    Path("results/demo")))
        >>> outcome.table[["name", "status", "val_top1"]]                                        # doctest: +SKIP
    """
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial from Optuna would drown the progress
    try:
        return _run(settings, resume)
    except Exception as err:  # a full disk, wherever it struck (a worker, Ray's writes, ours): one line, exit 2
        full = find_disk_full(err, settings.run_dir)
        if full is None:
            raise
        raise DiskFull(f"{full} (python run_ablation.py --resume --name {settings.run_dir.name})") from None
    finally:
        optuna.logging.set_verbosity(verbosity)


def _open_store(settings: RunSettings, split_sizes: dict[str, int]) -> RunLink:
    """The run's link to its store (``settings.store_url``), which every model of the run is looked up in and filed
    into: the run's folder and the run-level parts of its models' keys.

    Raises:
        UsageError: The store cannot be opened (unreachable, damaged, of a newer schema: one line naming the fix).
    """
    return RunLink(open_store(settings.store_url), str(settings.run_dir), store_context(settings, split_sizes))


def check_started_here(run_dir: Path) -> None:
    """A run resumes only in the folder it was started in: Ray's saved state of the run (``tune/tuner.pkl``: the
    searcher with its study's storage, the progress callback) holds that folder's absolute path.

    Raises:
        UsageError: run.json says the run was started in another folder (one line: how to resume it).
    """
    started_in = read_run_json(run_dir).get("run_dir")
    if started_in and not (Path(started_in).exists() and os.path.samefile(started_in, run_dir)):
        raise UsageError(f"{run_dir} was started as {started_in}, and Ray's saved state of the run points there: "
                         f"move it back (or link {started_in} to it) to resume it")


def first_model(settings: RunSettings, plan: dict[str, Any]) -> BlockConfig:
    """The model whose worker's memory the run measures: the plan's longest training (the run starts it first, and
    the biggest model takes the most memory), else the design's first point, else the first baseline."""
    seconds = plan.get("seconds") or {}
    if seconds:
        return BlockConfig.parse(max(seconds, key=seconds.get))
    points = run_design(settings)[1]
    return settings.space.config(points[0]) if points else BASELINE_BY_TIMM_NAME[settings.space.baselines[0]].block


def _train_or_stop(settings: RunSettings, resume: bool, resources: dict[str, float], jobs: JobRunner, workers: int,
                   budget: MemoryBudget | None) -> None:
    """:func:`_train_everything`, with a training whose worker died a failed attempt retried from its checkpoint
    (:mod:`ablate.tune.faults`); when one's retries are spent, the run stops in one line with the ``--resume``
    command (a UsageError: exit 2), never a traceback — what was filed stays filed, nothing is filed for it."""
    def name_of(trial: Any) -> str:
        return f"{trial.config.get(PHASE, SEARCH)} trial {settings.space.block_of(trial.config)} s{settings.seed}"

    try:
        with tune_worker_faults(name_of):
            _train_everything(settings, resume, resources, jobs)
    except Exception as err:
        death = worker_death(err)
        if death is None or isinstance(err, UsageError):
            raise
        lost = find_lost(err) or WorkerLost("a training", death, 1)
        raise UsageError(stop_line(lost, settings.run_dir.name, workers, settings.cpus_per_trial, budget)) from None


def _run(settings: RunSettings, resume: bool) -> RunOutcome:
    settings = replace(settings, run_dir=settings.run_dir.resolve())  # trials run with the trial folder as cwd
    if settings.store and "://" not in settings.store:  # a SQLite file's path: absolute in run.json, as run_dir is
        settings = replace(settings, store=str(Path(settings.store).expanduser().resolve()))
    if resume:
        check_started_here(settings.run_dir)
    started = time.time()
    settings, split_sizes = _with_data(settings)
    link = _open_store(settings, split_sizes)  # before Ray starts: a store that cannot be opened leaves nothing
    plan = read_run_json(settings.run_dir).get("plan") if resume else None
    if plan is None:  # before Ray starts, on an idle machine: the models' steps are timed here
        planned = plan_run(settings, settings.run_dir.parent)
        print(plan_line(planned), flush=True)
        plan = planned.as_dict() if planned else {}
    dashboard_url = init_ray(settings)  # before the run folder exists: a cluster that refuses us leaves nothing
    if dashboard_url:
        print(f"Ray dashboard: http://{dashboard_url} (if it asks for a token: `ray get-auth-token`)", flush=True)
    run_dir = settings.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = read_run_json(run_dir)
    earlier = earlier_lives_seconds(previous, run_dir)  # a killed session's time too
    first_start = previous.get("started") or _iso(started)
    aliases = space_networks(settings.space, settings.macro).aliases
    if unnamed_axes_line(settings.space):  # an axis the space file leaves to the block's default
        print(unnamed_axes_line(settings.space), flush=True)
    for alias, name in aliases.items():
        print(f"[ablate] {alias} builds the same network as {name}: trained once, reported as {name}", flush=True)
    resources = trial_resources(settings)
    if cpu_fallback_line(settings.protocol, resources["gpu"]):  # a GPU recipe on CPUs: one line says what is off
        print(cpu_fallback_line(settings.protocol, resources["gpu"]), flush=True)
    budget = measure_memory(settings, resources, first_model(settings, plan))
    resources = trial_resources(settings, budget)  # each training reserves the memory its worker needs
    workers = min(settings.max_concurrent or default_concurrency(resources), default_concurrency(resources))
    print(concurrency_line(workers, resources, budget), flush=True)
    write_run_json(run_dir, run_meta(settings, started=first_start, finished=None, data=split_sizes, started_at=started,
                                     wall_seconds=earlier, aliases=aliases, plan=plan,
                                     workers=workers, store_context=link.context))
    link.store.register_run(link.run, run_dir.name, read_run_json(run_dir))
    import_cache(link.store, run_dir.parent)  # the baseline cache that came before the store, filed once
    if resume:
        RunRecord(run_dir, link).refile()  # what the stopped session filed in records/ but not in the store
    jobs = JobRunner(settings, link)
    jobs.submit(longest_first(baseline_jobs(settings) + ablation_jobs(settings, run_design(settings)[1]),
                              plan.get("seconds") or {}), resources)
    try:
        _train_or_stop(settings, resume, resources, jobs, workers, budget)
    except KeyboardInterrupt:  # Ctrl-C: Tune's trials stopped with its fit; the Ray tasks training stop too
        cancel(jobs.pending.values())
        raise
    finally:
        jobs.close()
    table = load(run_dir)
    _publish(settings, table)
    for tracker in jobs.trackers:
        print(f"[ablate] {tracker.name}: {tracker.where()}", flush=True)
    wall = earlier + time.time() - started
    write_run_json(run_dir, run_meta(settings, started=first_start, finished=_iso(time.time()), data=split_sizes,
                                     wall_seconds=wall, aliases=aliases, plan=plan, workers=workers,
                                     store_context=link.context))
    analysis_of(run_dir)  # the run's one analysis pass, saved beside its tables: the report and load() read it
    return RunOutcome(run_dir, table, dashboard_url)
