"""Faults from outside a run: the process training a model dies (Ray's memory monitor, a lost node, a SIGKILL).

Such a death is a failed attempt of that training, retried from its last epoch checkpoint like any crash, up to
``max_failures`` times; once a training's retries are spent, the run stops in one line that names the cause, the fix
and the ``--resume`` command — the death says nothing about the model, so it is never filed as the model's failure
(a failed row would be an honest-looking wrong result, and the model would not be trained again on resume).

Ray Tune handles a dead actor (``RayActorError``) as a trial failure, but Ray 2.60's actor manager raises any other
Ray error of a trial's actor task — ``OutOfMemoryError`` when the memory monitor killed the worker, ``NodeDiedError``
— as a ``RuntimeError`` out of ``tune_controller.step`` and so out of ``Tuner.fit()``. :func:`tune_worker_faults`
routes those to Tune as the actor's death, and stops the run where Tune would mark a trial whose worker died as
ERROR (and tell the searcher FAIL). Both hooks are on private Ray Tune methods, found in one place
(:func:`tune_hooks`); ``tests/test_worker_faults.py`` fails loudly if a Ray upgrade moves them.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

import ray.exceptions as rex

from ablate.core.errors import AblateError, error_summary

if TYPE_CHECKING:
    from ablate.tune.cluster import MemoryBudget

# What a training's process dying looks like to the driver: the actor or task's worker is gone, whatever killed it
WORKER_DEATHS: tuple[type[BaseException], ...] = (rex.RayActorError, rex.OutOfMemoryError, rex.NodeDiedError,
                                                  rex.WorkerCrashedError, rex.LocalRayletDiedError)


def worker_death(err: BaseException | None) -> BaseException | None:
    """The error in ``err``'s chain (itself, a Ray task error's cause, ``__cause__``, ``__context__``) that says the
    process training a model died, or None when nothing in it does (a crash of the training's own code)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, (WorkerLost, WorkerDied)):
            return err.cause
        if isinstance(err, WORKER_DEATHS):
            return err
        err = getattr(err, "cause", None) or err.__cause__ or err.__context__
    return None


# How Ray's memory monitor words its kills (an actor death's text may only list "OOM" among possible causes)
MEMORY_MONITOR_WORDS = ("low on memory", "out of memory issue", "memory monitor")


def is_memory(death: BaseException) -> bool:
    """Whether a worker's death was Ray's memory monitor (an ``OutOfMemoryError``, or an actor death that says so)."""
    text = str(death).lower()
    return isinstance(death, rex.OutOfMemoryError) or any(words in text for words in MEMORY_MONITOR_WORDS)


class WorkerLost(AblateError):
    """A training's worker died and its retries are spent: the run cannot go on (:func:`stop_line` says why).

    Args:
        training: Which training (a Tune trial's config, a job's trial id).
        cause: The Ray error that says the worker died.
        attempts: How many attempts it had.
    """

    def __init__(self, training: str, cause: BaseException, attempts: int):
        super().__init__(f"{training}: {error_summary(cause)}")
        self.training, self.cause, self.attempts = training, cause, attempts


def find_lost(err: BaseException | None) -> WorkerLost | None:
    """The :class:`WorkerLost` in an error's chain (Tune wraps what its hooks raise in a ``TuneError``), if any."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, WorkerLost):
            return err
        err = err.__cause__ or err.__context__
    return None


class WorkerDied(rex.ActorDiedError):
    """A Ray error of a trial's actor task that is not an actor error, as the actor's death Tune recovers from."""

    def __init__(self, cause: BaseException):
        rex.RayActorError.__init__(self, error_msg=death_text(cause))  # ActorDiedError's own wants Ray's context
        self.cause = cause

    def __reduce__(self):  # Tune pickles a trial's error into its folder
        return WorkerDied, (self.cause,)


def death_text(death: BaseException) -> str:
    """A worker's death in one line, with the error's name (``OutOfMemoryError: Task was killed …``)."""
    text = error_summary(death)
    name = type(death).__name__
    return text if text.startswith(name) else f"{name}: {text}"


@dataclass(frozen=True)
class TuneHooks:
    """The two private Ray Tune methods :func:`tune_worker_faults` wraps: the actor manager's handler of a failed
    actor task, and the controller's handler of a failed trial."""

    actor_manager: type
    controller: type


def tune_hooks() -> TuneHooks:
    """Ray Tune's classes that hold the hooked methods (``_actor_task_failed``, ``_process_trial_failure``)."""
    from ray.air.execution._internal.actor_manager import RayActorManager
    from ray.tune.execution.tune_controller import TuneController

    return TuneHooks(RayActorManager, TuneController)


@contextmanager
def tune_worker_faults(name_of: Callable[[Any], str]) -> Iterator[None]:
    """While the block runs (``Tuner.fit()``), a Tune trial whose worker died is a failed attempt that Tune retries
    from its checkpoint (``FailureConfig(max_failures)``), whatever Ray error said so; the death that would end a
    trial, its retries spent, raises :class:`WorkerLost` out of ``fit()`` instead, before the searcher or the
    progress callback hears of it: the trial stays unfinished in Ray's saved state, and ``--resume`` trains it on.

    Args:
        name_of: A trial's name for the one line (its config's block).
    """
    hooks = tune_hooks()
    task_failed = hooks.actor_manager._actor_task_failed
    trial_failure = hooks.controller._process_trial_failure

    def _actor_task_failed(self, tracked_actor_task, exception):
        if isinstance(exception, rex.RayError) and not isinstance(exception, (rex.RayActorError, rex.RayTaskError)):
            exception = WorkerDied(exception)
        return task_failed(self, tracked_actor_task, exception)

    def _process_trial_failure(self, trial, exception):
        death = worker_death(exception)
        attempts = trial.run_metadata.num_failures + 1
        if death is not None and 0 <= trial.max_failures < attempts:
            raise WorkerLost(name_of(trial), death, attempts)
        if trial.max_failures < 0 or attempts <= trial.max_failures:  # one line where Tune would log a traceback
            what = f"its worker died ({death_text(death)})" if death is not None else error_summary(exception)
            print(f"[ablate] {name_of(trial)}: attempt {attempts} failed, {what}; the next resumes from its "
                  f"checkpoint", flush=True)
        return trial_failure(self, trial, exception)

    hooks.actor_manager._actor_task_failed = _actor_task_failed
    hooks.controller._process_trial_failure = _process_trial_failure
    try:
        yield
    finally:
        hooks.actor_manager._actor_task_failed = task_failed
        hooks.controller._process_trial_failure = trial_failure


def fewer_at_once(workers: int, cpus_per_trial: float) -> tuple[int, float]:
    """Half as many trainings at once (at least one), and the ``--cpus-per-trial`` that fits that many on the CPUs
    that ran ``workers`` at ``cpus_per_trial`` each."""
    fewer = max(1, workers // 2)
    return fewer, float(math.ceil(cpus_per_trial * workers / fewer))


def stop_line(lost: WorkerLost, run_name: str, workers: int, cpus_per_trial: float,
              budget: "MemoryBudget | None") -> str:
    """The one line a run that cannot go on ends with: which training's worker died how often and of what, the fix
    (for memory: what each worker used, the node's memory for Ray's workers, the flags that run fewer at once) and
    the ``--resume`` command — nothing filed is lost.

    Args:
        lost: The training whose retries are spent.
        run_name: The run's folder name (``--name``).
        workers: Trainings at once in this session.
        cpus_per_trial: CPUs each training had.
        budget: The measured memory budget, if any.
    """
    death = lost.cause
    resume = f"`python run_ablation.py --resume --name {run_name}`"
    if is_memory(death):
        fewer, cpus = fewer_at_once(workers, cpus_per_trial)
        used = budget.text() if budget else "its worker's memory was not measured"
        fix = (f"Ray's memory monitor killed it as the node ran out of memory ({used}; {workers} at once, other "
               f"programs hold the rest): free memory, then continue with {resume} (it measures again and fits the "
               f"trainings into the memory free as it starts), or start the run again with {fewer} at once "
               f"(--max-concurrent {fewer} or --cpus-per-trial {cpus:g})")
    elif isinstance(death, (rex.NodeDiedError, rex.LocalRayletDiedError)):
        fix = f"its Ray node was lost: check the node and the cluster (`ray status`), then continue with {resume}"
    else:
        fix = ("something outside the run killed its process (a SIGKILL, a container's memory limit; the worker logs "
               f"are logs/worker-*.err in Ray's session folder): continue with {resume}")
    return (f"{lost.training}: its worker died {lost.attempts} time{'s' if lost.attempts != 1 else ''} "
            f"({death_text(death)}); {fix}; nothing filed is lost")
