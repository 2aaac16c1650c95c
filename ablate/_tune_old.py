"""Orchestration: Optuna samples blocks, Ray Tune trains them (ASHA, checkpoints, retries, resume), the
baselines train alongside as Ray tasks, and everything lands in one results table.

The same code runs on a laptop's CPUs (a local Ray) and on a GPU cluster (``address="auto"``, fractional
``gpus_per_trial``); Ray does the scheduling.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import socket
import sys
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import optuna
import pandas as pd
import ray
from optuna.trial import TrialState
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from ablate.costs import measure
from ablate.errors import UsageError
from ablate.models import BASELINE_IDS, BASELINES, BlockConfig, build_model
from ablate.protocols import Protocol
from ablate.results import CURVE_COLUMNS, hardware, read_run_json, versions, write_run_json, write_tables
from ablate.space import Objective, SearchSpace, config_hash
from ablate.data import load_dataset
from ablate.training import TrainResult, read_epoch_log, train

TrainFn = Callable[..., TrainResult]


@dataclass(frozen=True)
class RunSettings:
    """Everything that defines an ablation run; saved in run.json so ``--resume`` needs only the run's name."""

    space: SearchSpace
    protocol: Protocol
    run_dir: Path
    trials: int = 12
    seed: int = 0
    sampler: str = "tpe"
    objectives: tuple[Objective, ...] = (Objective("top1", "maximize"),)
    scheduler: str = "asha"
    address: str | None = None
    gpus_per_trial: float | None = None  # None: 1 when the cluster has GPUs, else 0
    cpus_per_trial: float = 1.0
    max_concurrent: int | None = None  # None: as many trials as the cluster's resources fit
    storage: str | None = None  # Optuna storage URL; None: a journal file in the run folder
    dashboard: bool = True
    data_dir: str | None = None
    max_failures: int = 2
    command: str = ""
    objectives_from: str = "--objectives"  # where the objectives came from, for the run header and run.json
    train_fn: TrainFn = field(default=train, compare=False)  # injectable for tests (e.g. a failing trainer)

    @property
    def macro(self) -> str:
        return self.space.macro_for(self.protocol.name, self.protocol.macro)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1


def make_sampler(name: str, space: SearchSpace, seed: int, trials: int) -> optuna.samplers.BaseSampler:
    samplers: dict[str, Callable[[], optuna.samplers.BaseSampler]] = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, trials // 2))),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed, population_size=max(2, min(50, trials // 2))),
        "grid": lambda: optuna.samplers.GridSampler(space.grid_search_space(), seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    if name not in samplers:
        raise UsageError(f"unknown sampler {name!r}: choose one of {', '.join(samplers)}")
    return samplers[name]()


def make_storage(url: str | None, run_dir: Path) -> optuna.storages.BaseStorage:
    """A journal file in the run folder by default (safe with parallel writers, unlike SQLite); an RDB URL on a cluster."""
    from optuna.storages.journal import JournalFileBackend

    if url is None or url.endswith((".journal", ".log")):
        path = Path(url) if url else run_dir / "optuna.journal"
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as err:  # sqlalchemy raises many kinds for a bad URL; all mean the same to the user
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(f"cannot open Optuna storage {url!r}: {message} (use e.g. sqlite:///study.db, "
                         "postgresql://user@host/db, or a .journal file path)") from None


# ---------------------------------------------------------------------------------------------- one trial


COUNT_COLUMNS = ("params", "macs", "elementwise_ops", "activations")
TIMING_COLUMNS = ("latency_ms", "throughput")
TRIAL_LATENCY = "trial_latency_ms"


def _cost_columns(block: BlockConfig, settings: RunSettings, num_classes: int, input_size: tuple[int, ...],
                  device: str, *, trial_latency: bool = False) -> dict[str, Any]:
    """Counts; with ``trial_latency`` also a batch-1 latency timed here, before training, on this trial's resources.

    That in-trial latency is what a ``latency`` objective optimises (the searcher needs it from every trial); the
    table's ``latency_ms`` / ``throughput`` are measured later for all models side by side (see ``time_models``).
    """
    costs = measure(build_model(block, settings.macro, num_classes), input_size, device=device,
                    timing=trial_latency, batch_size=1, repeats=20)
    columns = {k: getattr(costs, k) for k in COUNT_COLUMNS}
    return {**columns, TRIAL_LATENCY: costs.latency_ms} if trial_latency else columns


def time_models(configs: list[str], settings: RunSettings, batch_size: int = 64) -> dict[str, dict[str, float]]:
    """Latency and throughput of every distinct block, one after another on one worker with nothing else running.

    Timing inside the trials would measure whatever else shared the machine at that moment; timing them here,
    side by side under the same conditions, makes the ratios between rows meaningful.
    """
    protocol, data, device = _prepare(settings)
    timings = {}
    for config in configs:
        model = build_model(BlockConfig.parse(config), settings.macro, data.num_classes)
        costs = measure(model, data.input_size, device=device, batch_size=batch_size, repeats=10)
        timings[config] = {"latency_ms": costs.latency_ms, "throughput": costs.throughput}
    return timings


class ModelTimer:
    """A Ray actor that runs ``time_models`` once every trial has ended."""

    def time(self, configs: list[str], settings: RunSettings) -> dict[str, dict[str, float]]:
        return time_models(configs, settings)


def start_timer(resources: dict[str, float], *, at_start: bool):
    """On CPU the timer starts with the run and holds no CPU, so its worker has imported torch and timm by the time
    the trials end (a cold worker costs seconds at the end of every run); on GPU it needs a GPU slot, which it
    takes only after the trials have given theirs back."""
    if at_start and resources["gpu"]:
        return None
    cpus, gpus = (0, 0) if at_start else (resources["cpu"], resources["gpu"])
    return ray.remote(ModelTimer).options(num_cpus=cpus, num_gpus=gpus).remote()


def _identity_columns(block: BlockConfig, macro: str) -> dict[str, Any]:
    return {"config": str(block), "config_hash": config_hash(block, macro), "nonlinearity": block.nonlinearity,
            "spatial": block.spatial, "width": block.width}


@lru_cache(maxsize=2)
def _splits(dataset: str, image_size: int | None, val_fraction: float, data_dir: str | None, device: str, seed: int):
    """Per-process: a reused trial actor (``reuse_actors``) trains its next candidate on the splits already loaded."""
    return load_dataset(dataset, data_dir=data_dir, device=device, val_fraction=val_fraction, seed=seed,
                        image_size=image_size)


def _prepare(settings: RunSettings):
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(max(1, int(settings.cpus_per_trial)))
    protocol = settings.protocol.with_overrides(macro=settings.macro)
    splits = _splits(protocol.dataset, protocol.image_size, protocol.val_fraction, settings.data_dir, device, settings.seed)
    return protocol, splits, device


def candidate_trainable(config: dict[str, Any], settings: RunSettings) -> None:
    """One Ray Tune trial: count costs, train, report every epoch.

    The trainer checkpoints every epoch into ``run_dir/trials/<trial id>``, which a retried trial (FailureConfig)
    or a restored one (``--resume``) resumes from. That folder, not Ray's checkpoint rotation, is the source of
    truth: Ray snapshots its experiment state only every few seconds, so after a driver kill it may point at a
    rotated-away checkpoint or at a trial it believes unfinished. On a multi-node cluster the results folder
    must be on shared storage, as Ray Tune's storage_path must be anyway.
    """
    block = settings.space.config({a.name: config[a.name] for a in settings.space.axes})
    protocol, data, device = _prepare(settings)
    costs = _cost_columns(block, settings, data.num_classes, data.input_size, device,
                          trial_latency=any(o.column == TRIAL_LATENCY for o in settings.objectives))
    constant = {"block": str(block), **costs}
    state_dir = settings.run_dir / "trials" / tune.get_context().get_trial_id()
    reported = []

    def report(metrics: dict[str, Any]) -> None:
        reported.append(metrics["epoch"])
        tune.report({**metrics, **constant, "status": "running", "reason": ""})

    result = settings.train_fn(block, protocol, report=report, checkpoint_dir=state_dir, seed=settings.seed,
                               data=data, device=device)
    if result.status == "completed" and not reported:  # it had finished before the driver was killed
        report(result.history[-1])
    elif result.status != "completed":  # val_top1 stays in the result: Tune checks every result has its metric
        tune.report({**constant, "status": result.status, "reason": result.reason, "epoch": result.epochs,
                     "val_top1": result.val_top1})


def train_baseline(name: str, settings: RunSettings, state_dir: str) -> dict[str, Any]:
    """One baseline, trained like a candidate (same protocol, macro, seed); resumes from ``state_dir``."""
    block = BASELINES[name]
    protocol, data, device = _prepare(settings)
    row = {"kind": "baseline", "trial_id": f"baseline-{name}", "name": name, **_identity_columns(block, settings.macro),
           **_cost_columns(block, settings, data.num_classes, data.input_size, device)}
    result = settings.train_fn(block, protocol, checkpoint_dir=state_dir, seed=settings.seed, data=data, device=device)
    row.update(status=result.status, reason=result.reason, epochs=result.epochs, val_top1=result.val_top1,
               val_top5=result.val_top5, val_loss=result.val_loss, test_top1=result.test_top1,
               train_seconds=result.train_seconds, seed=settings.seed)
    return {"row": row, "curves": [{**m, "trial_id": row["trial_id"], "name": name, "kind": "baseline"} for m in result.history]}


# ---------------------------------------------------------------------------------------------- baselines


PACKAGE_ROOT = Path(__file__).resolve().parent


def code_version(root: Path = PACKAGE_ROOT) -> str:
    """Hash of the package's source: a cached baseline is reused only if the code that trained it is unchanged."""
    digest = hashlib.sha1()
    for path in sorted(root.rglob("*.py")) + sorted(root.rglob("*.yaml")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def baseline_cache_key(settings: RunSettings, name: str) -> str:
    key = json.dumps({"protocol": settings.protocol.as_dict(), "macro": settings.macro, "seed": settings.seed,
                      "baseline": name, "code": code_version()}, sort_keys=True, default=str)
    return hashlib.sha1(key.encode()).hexdigest()[:16]


class BaselineRunner:
    """Trains the baselines as Ray tasks beside the Tune trials, reusing cached results when the key matches."""

    def __init__(self, settings: RunSettings, cache_dir: Path):
        self.settings, self.cache_dir = settings, cache_dir
        self.names = [BASELINE_IDS[b] for b in settings.space.baselines]
        self.results: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, Any] = {}

    def _cache_file(self, name: str) -> Path:
        return self.cache_dir / f"{baseline_cache_key(self.settings, name)}.json"

    def start(self, resources: dict[str, float]) -> None:
        remote = ray.remote(train_baseline).options(num_cpus=resources.get("cpu", 1), num_gpus=resources.get("gpu", 0),
                                                     max_retries=self.settings.max_failures)
        for name in self.names:
            cached = self._cache_file(name)
            if cached.is_file():
                self.results[name] = json.loads(cached.read_text())
                continue
            state_dir = self.settings.run_dir / "baselines" / name
            state_dir.mkdir(parents=True, exist_ok=True)
            self.pending[name] = remote.remote(name, self.settings, str(state_dir))

    def done_count(self) -> int:
        if self.pending:
            ready, _ = ray.wait(list(self.pending.values()), num_returns=len(self.pending), timeout=0)
            ready = set(ready)
            return len(self.results) + sum(1 for ref in self.pending.values() if ref in ready)
        return len(self.results)

    def collect(self) -> dict[str, dict[str, Any]]:
        for name, ref in self.pending.items():
            try:
                outcome = ray.get(ref)
            except Exception as err:  # a crashed baseline is a row with its reason, not a crashed run
                outcome = {"row": {"kind": "baseline", "trial_id": f"baseline-{name}", "name": name,
                                   **_identity_columns(BASELINES[name], self.settings.macro), "status": "failed",
                                   "reason": error_summary(err)}, "curves": []}
            if outcome["row"]["status"] == "completed":
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                self._cache_file(name).write_text(json.dumps(outcome, default=_json_number))
            self.results[name] = outcome
        self.pending = {}
        return self.results


def _json_number(value: Any) -> Any:
    return float(value) if hasattr(value, "__float__") else str(value)


def error_summary(err: BaseException) -> str:
    """The error that really happened, in one line: ``Type: first line of its message``.

    Ray wraps a remote exception in a task error whose text is a long traceback; its ``cause`` is the original.
    Where no cause survived (it could not be pickled), the traceback's last line names the error instead.
    """
    while getattr(err, "cause", None) is not None and err.cause is not err:
        err = err.cause
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if isinstance(err, ray.exceptions.RayError):
        text = lines[-1] if lines else type(err).__name__
    else:
        text = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    return text[:300]


# ---------------------------------------------------------------------------------------------- progress


_LIVE_BASELINES: dict[str, "BaselineRunner"] = {}  # run folder → the driver's baseline runner, for the progress line


class ProgressPrinter(tune.Callback):
    """A one-line status on stdout: trials done / running / pruned / failed, the best so far, baselines.

    Ray pickles callbacks into its experiment state and restores them on resume, so this holds only plain
    values and finds the (unpicklable) baseline runner of the live driver through ``_LIVE_BASELINES``.
    """

    def __init__(self, run_dir: Path, trials: int, epochs: int):
        self.run_dir, self.trials, self.epochs = str(run_dir), trials, epochs
        self.seen: dict[str, dict[str, Any]] = {}
        self.ended: dict[str, str] = {}  # Tune calls the hooks below before it updates trial.status
        self.last_print = 0.0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.seen[trial.trial_id] = result
        self.print(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.ended[trial.trial_id] = "TERMINATED"
        self.print(trials, force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended[trial.trial_id] = "ERROR"
        self.print(trials, force=True)

    def status_of(self, trial) -> str:
        result = self.seen.get(trial.trial_id) or trial.last_result or {}
        return classify(self.ended.get(trial.trial_id, trial.status), result, self.epochs)

    def print(self, trials, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_print < 2.0:
            return
        self.last_print = now
        counts = {"completed": 0, "pruned": 0, "failed": 0, "running": 0, "pending": 0}
        for trial in trials:
            counts[self.status_of(trial)] += 1
        best = max(((r.get("val_top1", -1), r.get("block", "?")) for r in self.seen.values()
                    if isinstance(r.get("val_top1"), (int, float)) and math.isfinite(r["val_top1"])), default=None)
        best_text = f"best val top-1 {best[0]:.1f}% ({best[1]})" if best else "best —"
        done = counts["completed"] + counts["pruned"] + counts["failed"]
        baselines = _LIVE_BASELINES.get(self.run_dir)
        baseline_text = f" | baselines {baselines.done_count()}/{len(baselines.names)}" if baselines else ""
        print(f"[ablate] trials {done}/{self.trials} done: {counts['completed']} completed, {counts['pruned']} pruned, "
              f"{counts['failed']} failed; {counts['running']} running | {best_text}{baseline_text}", flush=True)


def classify(tune_status: str, result: dict[str, Any], epochs: int) -> str:
    """Our status of a Tune trial: failed (error or non-finite loss), pruned (stopped early), completed, running."""
    if tune_status == "ERROR" or result.get("status") == "failed":
        return "failed"
    if tune_status == "TERMINATED":
        return "completed" if result.get("epoch", 0) >= epochs else "pruned"
    return "running" if tune_status == "RUNNING" else "pending"


# ---------------------------------------------------------------------------------------------- the run


class AblationSearch(OptunaSearch):
    """Ray's OptunaSearch, telling Optuna PRUNED for ASHA-stopped trials and FAIL for failed ones.

    Ray's own searcher reports a stopped trial as COMPLETE with its partial accuracy, which would make the
    study (and optuna-dashboard) treat a 1-epoch score as a final one.
    """

    def __init__(self, epochs: int, points: list[dict[str, Any]], **kwargs: Any):
        super().__init__(**kwargs)
        self._epochs, self._points = epochs, points
        self._suggested: set[str] = set()
        self._rng = random.Random(kwargs.get("seed"))

    @staticmethod
    def _key(config: dict[str, Any]) -> str:
        return json.dumps(config, sort_keys=True, default=str)

    def suggest(self, trial_id: str) -> dict | None:
        """Never train a block twice while unseen ones remain: a repeated proposal is told to the study as FAIL
        (user attr ``duplicate``) and replaced by a random unseen block, enqueued so Optuna records it as usual.
        """
        config = super().suggest(trial_id)
        if not isinstance(config, dict):
            return config
        unseen = [p for p in self._points if self._key(p) not in self._suggested]
        if self._key(config) in self._suggested and unseen:
            duplicate = self._ot_trials.pop(trial_id)
            duplicate.set_user_attr("duplicate", True)
            self._tell(duplicate, TrialState.FAIL)
            self._ot_study.enqueue_trial(self._rng.choice(unseen))
            config = super().suggest(trial_id)
        self._suggested.add(self._key(config))
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        status = classify("ERROR" if error else "TERMINATED", result or {}, self._epochs)
        if status == "completed" or trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        self._tell(self._ot_trials[trial_id], TrialState.PRUNED if status == "pruned" else TrialState.FAIL)
        self._completed_trials.add(trial_id)

    def _tell(self, trial: optuna.Trial, state: TrialState) -> None:
        """Tell Optuna, tolerating the two harmless refusals (Ray's own searcher swallows every error here):
        GridSampler's ``study.stop()`` once the grid is used up (the state is stored before it, in a ``finally``),
        and a trial the storage already holds as finished (the searcher's snapshot lags it after a resume)."""
        try:
            self._ot_study.tell(trial, None, state=state)
        except RuntimeError as err:
            if "Study.stop" not in str(err):
                raise
        except ValueError as err:
            if "Cannot tell a" not in str(err):
                raise


def check_address(address: str) -> None:
    """Fail fast, in one line, when a host:port cluster address does not answer (Ray would retry for minutes)."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=3).close()
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot reach a Ray cluster at {address!r} ({err}): start one with `ray start --head` "
                         "or pass --address auto on a cluster node") from None


RAY_ENVIRONMENT = {
    "RAY_AIR_NEW_OUTPUT": "0",  # with verbose=0, Ray's legacy output is silent; ours is the progress line
    "TUNE_GLOBAL_CHECKPOINT_S": "2",  # Ray's experiment snapshot: fresh enough for a driver kill
}


def init_ray(settings: RunSettings) -> str | None:
    """Connect to ``settings.address`` or start a local Ray; returns the dashboard URL if there is one."""
    for key, value in RAY_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    if ray.is_initialized():
        return None
    if settings.address:
        check_address(settings.address)
    local = {} if settings.address else {"include_dashboard": settings.dashboard, "dashboard_host": "127.0.0.1",
                                         **ray_temp_dir(settings.run_dir.parent)}
    try:
        context = ray.init(address=settings.address, log_to_driver=False, logging_level="ERROR", **local)
    except ConnectionError as err:
        raise UsageError(f"cannot connect to Ray at {settings.address!r}: {error_summary(err)}") from None
    return getattr(context, "dashboard_url", None) or None


def ray_temp_dir(results_dir: Path) -> dict[str, str]:
    """Ray's session folder under results/.ray when the path is short enough for its unix sockets (~107 bytes)."""
    path = (results_dir / ".ray").resolve()
    return {"_temp_dir": str(path)} if len(str(path)) <= 40 else {}


def trial_resources(settings: RunSettings) -> dict[str, float]:
    gpus = settings.gpus_per_trial
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    return {"cpu": settings.cpus_per_trial, "gpu": gpus}


def default_concurrency(resources: dict[str, float]) -> int:
    """As many trials as the cluster's CPUs (or GPUs, when trials use them) fit at once."""
    total = ray.cluster_resources()
    slots = [int(total.get("CPU", 1) // resources["cpu"])] if resources["cpu"] else []
    if resources["gpu"]:
        slots.append(int(total.get("GPU", 0) // resources["gpu"]))
    return max(1, min(slots) if slots else 1)


def build_tuner(settings: RunSettings, resources: dict[str, float], callbacks: list, study_name: str):
    metrics = [o.column for o in settings.objectives]
    modes = ["max" if o.direction == "maximize" else "min" for o in settings.objectives]
    searcher = AblationSearch(
        settings.protocol.epochs, settings.space.grid_points(), space=settings.space.define_by_run,
        metric=metrics if settings.multi_objective else metrics[0], mode=modes if settings.multi_objective else modes[0],
        sampler=make_sampler(settings.sampler, settings.space, settings.seed, settings.trials),
        study_name=study_name, storage=make_storage(settings.storage, settings.run_dir), seed=settings.seed,
    )
    concurrency = settings.max_concurrent or default_concurrency(resources)
    scheduler = None
    if settings.scheduler == "asha" and not settings.multi_objective and settings.protocol.epochs > 1:
        scheduler = ASHAScheduler(time_attr="epoch", metric="val_top1", mode="max",
                                  max_t=settings.protocol.epochs, grace_period=1, reduction_factor=2)
    trainable = tune.with_resources(tune.with_parameters(candidate_trainable, settings=settings), resources)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=concurrency),
                                    scheduler=scheduler, num_samples=settings.trials, reuse_actors=True),
        run_config=tune_run_config(settings, callbacks),
    )


def tune_run_config(settings: RunSettings, callbacks: list):
    return tune.RunConfig(
        name="tune", storage_path=str(settings.run_dir.resolve()), verbose=0, callbacks=callbacks,
        failure_config=tune.FailureConfig(max_failures=settings.max_failures),
    )


def _trial_rows(result_grid, settings: RunSettings) -> tuple[list[dict[str, Any]], list[pd.DataFrame]]:
    """One row and one learning curve per trial, read from the trainer's own epoch log in its state folder.

    Ray's per-trial metrics would repeat epochs a restored trial re-reports; the trainer's log holds each epoch
    it actually trained, once (a trial trained twice would show it, which the kill/resume test relies on).
    """
    rows, curves = [], []
    for result in result_grid:
        metrics = dict(result.metrics or {})
        config = result.config or {}
        block = settings.space.config({a.name: config[a.name] for a in settings.space.axes}) if config else None
        trial_id = metrics.get("trial_id") or Path(result.path).name
        log = read_epoch_log(settings.run_dir / "trials" / trial_id)
        last = log[-1] if log else {}
        error = result.error
        status = classify("ERROR" if error else "TERMINATED", {**metrics, "epoch": last.get("epoch", 0)},
                          settings.protocol.epochs)
        row = {**(_identity_columns(block, settings.macro) if block else {}),
               **{k: metrics.get(k) for k in (*COUNT_COLUMNS, TRIAL_LATENCY) if k in metrics}}
        row.update(kind="candidate", trial_id=trial_id, name=str(block) if block else trial_id, status=status,
                   reason=error_summary(error) if error else metrics.get("reason", ""),
                   epochs=int(last.get("epoch", 0)),
                   val_top1=last.get("val_top1", math.nan), val_top5=last.get("val_top5", math.nan),
                   val_loss=last.get("val_loss", math.nan),
                   test_top1=last.get("test_top1", math.nan) if status == "completed" else math.nan,
                   train_seconds=float(sum(e["epoch_seconds"] for e in log)), seed=settings.seed)
        rows.append(row)
        if log:
            curves.append(pd.DataFrame(log).assign(trial_id=trial_id, name=row["name"], kind="candidate")
                          .reindex(columns=CURVE_COLUMNS))
    return rows, curves


def reconcile_study(settings: RunSettings, study_name: str, rows: list[dict[str, Any]]) -> int:
    """Finish the trials a killed driver left RUNNING in the Optuna study; returns how many were finished.

    Ray snapshots its searcher every few seconds, so after a driver kill the restored searcher may not know a trial
    it had asked Optuna for. Such a trial takes the outcome of the table row with its block, unless another study
    trial already holds that block's outcome (then it is FAIL with ``interrupted``), or no row has it (FAIL too).
    """
    study = optuna.load_study(study_name=study_name, storage=make_storage(settings.storage, settings.run_dir))
    finished: set[str] = set()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)):
        if not trial.user_attrs.get("duplicate") and set(trial.params) >= {a.name for a in settings.space.axes}:
            finished.add(str(settings.space.config({a.name: trial.params[a.name] for a in settings.space.axes})))
    by_config = {row["config"]: row for row in rows if row.get("kind") == "candidate" and "config" in row}
    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in orphans:
        names = [a.name for a in settings.space.axes]
        config = str(settings.space.config({n: trial.params[n] for n in names})) if set(trial.params) >= set(names) else None
        row = by_config.get(config) if config not in finished else None
        if row is not None and row["status"] == "completed":
            study.tell(trial.number, [row[o.column] for o in settings.objectives] if settings.multi_objective
                       else row[settings.objectives[0].column])
        elif row is not None and row["status"] == "pruned":
            study.tell(trial.number, state=TrialState.PRUNED)
        else:
            optuna.Trial(study, trial._trial_id).set_user_attr("interrupted", True)
            study.tell(trial.number, state=TrialState.FAIL)
        finished.add(config)
    return len(orphans)


def run_meta(settings: RunSettings, **extra: Any) -> dict[str, Any]:
    return {
        "command": settings.command, "space": {"name": settings.space.name, "path": str(settings.space.path),
                                              "axes": [a.name for a in settings.space.axes]},
        "protocol": {**settings.protocol.as_dict(), "macro": settings.macro},
        "objectives": [{"metric": o.metric, "column": o.column, "direction": o.direction} for o in settings.objectives],
        "objectives_from": settings.objectives_from,
        "sampler": settings.sampler, "scheduler": settings.scheduler, "seed": settings.seed,
        "trials_requested": settings.trials, "address": settings.address, "gpus_per_trial": settings.gpus_per_trial,
        "cpus_per_trial": settings.cpus_per_trial, "max_concurrent": settings.max_concurrent,
        "storage": settings.storage, "data_dir": settings.data_dir, "max_failures": settings.max_failures,
        "versions": versions(), "hardware": hardware(), **extra,
    }


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(timestamp))


@dataclass
class RunOutcome:
    run_dir: Path
    table: pd.DataFrame
    dashboard_url: str | None


def run_ablation(settings: RunSettings, *, resume: bool = False) -> RunOutcome:
    """Run (or resume) an ablation end to end and write the results table; the caller builds the report."""
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
    _LIVE_BASELINES[str(run_dir)] = baselines
    progress = ProgressPrinter(run_dir, settings.trials, settings.protocol.epochs)
    tune_dir = run_dir / "tune"
    if resume and tune.Tuner.can_restore(str(tune_dir.resolve())):
        trainable = tune.with_resources(tune.with_parameters(candidate_trainable, settings=settings), resources)
        tuner = tune.Tuner.restore(str(tune_dir.resolve()), trainable, resume_unfinished=True, resume_errored=False)
    else:
        tuner = build_tuner(settings, resources, [progress], study_name=run_dir.name)
    timer = start_timer(resources, at_start=True)
    result_grid = tuner.fit()
    rows, curves = _trial_rows(result_grid, settings)
    reconcile_study(settings, run_dir.name, rows)
    for outcome in baselines.collect().values():
        rows.append(outcome["row"])
        if outcome["curves"]:
            curves.append(pd.DataFrame(outcome["curves"]).reindex(columns=CURVE_COLUMNS))
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
    curve_frame = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
    _LIVE_BASELINES.pop(str(run_dir), None)
    table = write_tables(run_dir, rows, curve_frame)
    wall = previous.get("wall_seconds", 0.0) + time.time() - started
    write_run_json(run_dir, run_meta(settings, started=first_start, finished=_iso(time.time()),
                                     wall_seconds=wall))
    return RunOutcome(run_dir, table, dashboard_url)


__all__ = ["RunOutcome", "RunSettings", "classify", "make_sampler", "make_storage", "run_ablation"]
