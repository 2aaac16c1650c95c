"""Faults from outside a run (issue 32): a training's worker that dies (Ray's memory monitor, a lost node, a SIGKILL)
is a failed attempt retried from its checkpoint; with its retries spent the run stops in one line with the resume
command; a Ray that cannot start or be joined is one line.

The end-to-end tests kill a trial's worker for real (SIGKILL, half a second into its second epoch) and make Ray
report that death the way its memory monitor reports its kills: a raw ``OutOfMemoryError`` where Tune's event
manager takes in the actor task's error — the error that, before this issue, rose out of ``tuner.fit()``.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import ray
import ray.cloudpickle
import ray.exceptions as rex
from conftest import ablate_command, cli_env, tiny_space_text

from ablate.core.errors import UsageError
from ablate.core.files import read_json
from ablate.protocols import load_protocol
from ablate.space import load_space
from ablate.training import read_epoch_log, train
from ablate.tune import RunSettings, cluster, faults, run_ablation
from ablate.tune.cluster import MemoryBudget
from ablate.tune.faults import WorkerLost, stop_line, tune_hooks, tune_worker_faults, worker_death

REPO = Path(__file__).resolve().parent.parent
OOM_TEXT = "Task was killed due to the node running low on memory. Memory on the node was 22.9GB / 24.0GB (0.95)"

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this test module


# --- the pieces, without Ray running ---------------------------------------------------------------------------

def _task_error(cause: BaseException) -> BaseException:
    return rex.RayTaskError("train", "Traceback …", cause).as_instanceof_cause()


@pytest.mark.parametrize("err, death", [
    (rex.OutOfMemoryError(OOM_TEXT), rex.OutOfMemoryError),
    (rex.ActorDiedError(), rex.ActorDiedError),
    (rex.NodeDiedError("node 1 died"), rex.NodeDiedError),
    (rex.WorkerCrashedError(), rex.WorkerCrashedError),
    (_task_error(rex.OutOfMemoryError(OOM_TEXT)), rex.OutOfMemoryError),  # raised inside the task
    (RuntimeError("wrapped"), None),
    (_task_error(RuntimeError("the trainer's own bug")), None),
])
def test_a_worker_death_is_told_from_a_crash_of_the_training_itself(err, death):
    found = worker_death(err)
    assert (found is None) if death is None else isinstance(found, death)


def test_worker_death_looks_through_tunes_wrapping():
    lost = WorkerLost("design trial relu-dwconv-w0.5 s0", rex.OutOfMemoryError(OOM_TEXT), 2)
    try:
        try:
            raise lost
        except WorkerLost:
            raise RuntimeError("TuneError: Traceback …")  # what Tune's task callback wrapper raises
    except RuntimeError as wrapped:
        assert faults.find_lost(wrapped) is lost and isinstance(worker_death(wrapped), rex.OutOfMemoryError)


def test_the_ray_tune_methods_the_hooks_wrap_are_where_they_were():
    """Fails loudly when a Ray upgrade moves or reshapes the private methods ``tune_worker_faults`` wraps."""
    import inspect

    hooks = tune_hooks()
    assert list(inspect.signature(hooks.actor_manager._actor_task_failed).parameters) == [
        "self", "tracked_actor_task", "exception"]
    assert list(inspect.signature(hooks.controller._process_trial_failure).parameters) == [
        "self", "trial", "exception"]


def _failed_task(errors: list):
    actor = SimpleNamespace(actor_id="a1", _on_error=None)
    manager = SimpleNamespace(_failed_actor_ids=set(), _cleanup_actor=lambda tracked_actor: None)
    task = SimpleNamespace(_tracked_actor=actor, _on_error=lambda tracked_actor, exc: errors.append(exc))
    return manager, task


def test_an_out_of_memory_kill_reaches_tune_as_the_actors_death():
    """Ray 2.60's actor manager raises an actor task's OutOfMemoryError out of Tune's loop; inside
    ``tune_worker_faults`` Tune gets it as the actor's death, which it retries from the checkpoint."""
    method = tune_hooks().actor_manager._actor_task_failed
    errors: list = []
    with pytest.raises(RuntimeError, match="unexpected exception"):  # what rose out of tuner.fit() before
        method(*_failed_task(errors), rex.OutOfMemoryError(OOM_TEXT))
    with tune_worker_faults(str):
        tune_hooks().actor_manager._actor_task_failed(*_failed_task(errors), rex.OutOfMemoryError(OOM_TEXT))
    assert len(errors) == 1 and isinstance(errors[0], rex.RayActorError)
    assert isinstance(worker_death(errors[0]), rex.OutOfMemoryError)
    assert tune_hooks().actor_manager._actor_task_failed is method  # put back


def test_a_trial_whose_worker_died_with_its_retries_spent_stops_the_run():
    trial = SimpleNamespace(run_metadata=SimpleNamespace(num_failures=1), max_failures=1, config={})
    with tune_worker_faults(lambda t: "design trial relu-dwconv-w0.5 s0"):
        with pytest.raises(WorkerLost) as lost:
            tune_hooks().controller._process_trial_failure(object(), trial, rex.OutOfMemoryError(OOM_TEXT))
    assert lost.value.attempts == 2 and lost.value.training == "design trial relu-dwconv-w0.5 s0"


def test_the_stop_line_says_what_each_worker_used_the_nodes_limit_the_flags_and_the_resume_command():
    budget = MemoryBudget(worker_peak=1_310_000_000, request=1_965_000_000, node_memory=15_600_000_000,
                          model="relu-dwconv-w1")
    lost = WorkerLost("design trial relu-dwconv-w1 s0", rex.OutOfMemoryError(OOM_TEXT), 3)
    line = stop_line(lost, "demo", workers=2, cpus_per_trial=1.0, budget=budget)
    assert "\n" not in line
    for part in ("died 3 times", "OutOfMemoryError", "1.3 GB", "15.6 GB", "2 at once", "--max-concurrent 1",
                 "--cpus-per-trial 2", "`python run_ablation.py --resume --name demo`", "nothing filed is lost"):
        assert part in line, (part, line)
    sigkill = stop_line(WorkerLost("baseline ResNet50 s0", rex.ActorDiedError(), 1), "demo", 2, 1.0, None)
    assert "killed its process" in sigkill and "--resume --name demo" in sigkill


START_ERRORS = {
    "timed out": Exception("The current node timed out during startup. This could happen because some of the raylet "
                           "failed to startup or the GCS has become overloaded."),
    "already in use": RuntimeError("Failed to start GCS: bind 0.0.0.0:6379: address already in use"),
    "session folder": ValueError("something else went wrong"),
}


@pytest.mark.parametrize("words", list(START_ERRORS))
def test_a_local_ray_that_cannot_start_is_one_line_and_leaves_nothing_running(monkeypatch, tmp_path, words):
    stopped = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "shutdown", lambda: stopped.append(True))

    def init(**kwargs):
        raise START_ERRORS[words]
    monkeypatch.setattr(ray, "init", init)
    settings = RunSettings(load_space("qlblock"), load_protocol("digits"), tmp_path / "results" / "r",
                           dashboard=False, design="balanced")
    with pytest.raises(UsageError) as err:
        cluster.init_ray(settings)
    message = str(err.value)
    assert "\n" not in message and message.startswith("Ray could not start on this machine (")
    assert words in message.lower() and stopped == [True]
    assert not (tmp_path / "results" / "r").exists()


# --- end to end --------------------------------------------------------------------------------------------------

def killed_in_epoch_2(config, protocol, *, report=None, checkpoint_dir=None, **kwargs):
    """The trainer, whose worker is SIGKILLed half a second into epoch 2: once per run (the first block that gets
    there, named in ``<run>/killed``), or every time while ``<results>/kill-always`` exists."""
    run_dir = Path(checkpoint_dir).parent.parent

    def report_then_kill(metrics):
        if report is not None:
            report(metrics)
        if metrics["epoch"] != 1:
            return
        if not (run_dir.parent / "kill-always").exists():
            try:
                with open(run_dir / "killed", "x") as marker:
                    marker.write(str(config))
            except FileExistsError:
                return
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGKILL)).start()
    return train(config, protocol, report=report_then_kill, checkpoint_dir=checkpoint_dir, **kwargs)


class MemoryMonitorReports:
    """Ray as Tune's event manager calls it, except that an actor's death comes as Ray's memory monitor reports its
    kills: a raw ``OutOfMemoryError`` (every actor death here is the injected kill)."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    def get(self, *args, **kwargs):
        try:
            return self._real.get(*args, **kwargs)
        except rex.RayActorError:
            raise rex.OutOfMemoryError(OOM_TEXT) from None


@pytest.fixture
def memory_monitor_kills(monkeypatch):
    from ray.air.execution._internal import event_manager

    monkeypatch.setattr(event_manager, "ray", MemoryMonitorReports(ray))


def _settings(tmp_path, name, **kw):
    space_file = tmp_path / "tiny.yaml"
    space_file.write_text(tiny_space_text("tiny", baselines=""))
    defaults = dict(space=load_space(space_file), protocol=load_protocol("digits").with_overrides(epochs=2),
                    run_dir=tmp_path / "results" / name, trials=2, seed=0, dashboard=False, confirm=0,
                    design="balanced", scheduler="none", train_fn=killed_in_epoch_2)
    return RunSettings(**{**defaults, **kw})


def _epochs(run_dir: Path) -> dict[str, list[int]]:
    return {d.name: [e["epoch"] for e in read_epoch_log(d)] for d in (run_dir / "trials").iterdir() if d.is_dir()}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_trial_killed_out_of_memory_mid_epoch_resumes_from_its_checkpoint(local_ray, memory_monitor_kills,
                                                                            tmp_path, capfd):
    settings = _settings(tmp_path, "oom-once", max_failures=1)
    outcome = run_ablation(settings)
    killed = (settings.run_dir / "killed").read_text()
    table = outcome.table
    assert len(table) == 2 and (table["status"] == "completed").all(), table[["name", "status", "reason"]]
    assert _epochs(settings.run_dir)[f"{killed}-s0"] == [1, 2]  # epoch 2 again from epoch 1's checkpoint
    out = capfd.readouterr()  # the file descriptors: Ray's and Tune's loggers included
    assert "Traceback" not in out.out + out.err
    assert f"design trial {killed} s0: attempt 1 failed, its worker died (OutOfMemoryError: Task was killed" in out.out
    assert "trainings at once" in out.out and "each worker peaks at" in out.out  # the memory-aware concurrency


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_trial_killed_with_its_retries_spent_stops_in_one_line_and_resume_finishes(local_ray,
                                                                                   memory_monitor_kills, tmp_path):
    settings = _settings(tmp_path, "oom-always", max_failures=0)
    (settings.run_dir.parent).mkdir(parents=True)
    (settings.run_dir.parent / "kill-always").touch()
    with pytest.raises(UsageError) as err:
        run_ablation(settings)
    line = str(err.value)
    assert "\n" not in line and "died 1 time (OutOfMemoryError: Task was killed" in line, line
    assert "each worker peaks at" in line and "`python run_ablation.py --resume --name oom-always`" in line
    filed = [read_json(p)["row"] for p in (settings.run_dir / "records").glob("*.json")]
    assert all(row["status"] == "completed" for row in filed)  # the killed trial is not filed as failed

    (settings.run_dir.parent / "kill-always").unlink()
    (settings.run_dir / "killed").write_text("no more kills")
    outcome = run_ablation(settings, resume=True)
    assert len(outcome.table) == 2 and (outcome.table["status"] == "completed").all()
    assert all(epochs == [1, 2] for epochs in _epochs(settings.run_dir).values())


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_an_address_nobody_answers_is_one_line_exit_2_from_the_probe(tmp_path):
    """Something listens at the address but never answers as Ray's GCS: one line, exit 2, nothing written."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    try:  # the timeout guards against Ray's own endless retries; the probe's wording shows it answered
        done = subprocess.run(ablate_command("--space", "qlblock", "--epochs", "1", "--name", "nobody", "--address",
                                             f"127.0.0.1:{port}", "--no-report"),
                              cwd=REPO, env=cli_env(tmp_path / "results"), capture_output=True, text=True,
                              timeout=cluster.PROBE_TIMEOUT_S + 90)
    finally:
        silent.close()
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith(f"error: nothing at 127.0.0.1:{port} answers as a Ray cluster")
    assert not (tmp_path / "results" / "nobody").exists()
