import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    """No run of this suite without its time limits: without pytest-timeout, ``timeout = 600`` in pyproject.toml is
    silently ignored and a hung ``Tuner.fit`` would hang the whole suite."""
    if not config.pluginmanager.hasplugin("timeout"):
        raise pytest.UsageError("pytest-timeout is not installed, so the suite's time limits would be ignored: "
                                "pip install -e \".[test]\"")


@pytest.fixture(scope="module")
def parallel():
    """Batches of simulated runs spread over the machine's 2 cores; one pool per module, so each worker's caches
    (the power factors) are filled once. ``parallel(fn, total, *args)`` calls ``fn(batch, total // 2, *args)`` in each
    worker and joins their lists."""
    from concurrent.futures import ProcessPoolExecutor

    workers = 2
    with ProcessPoolExecutor(workers) as pool:
        def run(fn, total: int, *args) -> list:
            parts = pool.map(fn, range(workers), [total // workers] * workers, *[[a] * workers for a in args])
            return [x for part in parts for x in part]
        yield run


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray (2 CPUs) for every test that needs one, stopped at the end of the session, pass or fail."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield
    finally:
        ray.shutdown()

# The tiny search space the end-to-end tests train: 3 nonlinearities × 2 spatial ops at one width, the smallest
# macro; each test appends its own name and baselines.
TINY_AXES = """\
axes:
  nonlinearity:
    choices: [relu, multiply, hardball]
  spatial:
    choices: [maxpool, dwconv]
fixed:
  width: 0.5
macro: cifar-tiny
"""


def tiny_space_text(name: str, baselines: str | None = None) -> str:
    """The tiny space as YAML, named, with ``baselines: [...]`` when given (all three otherwise)."""
    return f"name: {name}\n" + TINY_AXES + (f"baselines: [{baselines}]\n" if baselines is not None else "")


def load_bench_gpu():
    """benchmarks/bench_gpu.py as a module (its synthetic data and reference loop)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "benchmarks" / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module: small CPU models on 2 shared cores only oversubscribe them with more."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BN non-trivial statistics and affine terms (zero-init BNs would make checks vacuous)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=g) + 0.5
            m.bias.data = torch.randn(n, generator=g) * 0.1
            m.running_mean = torch.randn(n, generator=g) * 0.1
            m.running_var = torch.rand(n, generator=g) + 0.5
    return model


@pytest.fixture
def randomize_bn():
    return randomize_batchnorm


def kill_session(session_id: int) -> None:
    """SIGKILL every process of a session: a driver started with ``start_new_session`` and what it spawned
    (Ray's GCS and raylet share its process group; Ray's workers have groups of their own in the same session)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id:  # after ")": state, ppid, pgrp, session
            try:
                os.kill(int(stat.parent.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def session_alive(session_id: int) -> list[int]:
    """Pids still running in a session (zombies excluded)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


@pytest.fixture
def spawn():
    """Start commands in their own session; on teardown, pass or fail, kill each session and reap the process."""
    started: list[subprocess.Popen] = []

    def start(args, **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(args, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop_session(proc)


def stop_session(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Kill a process started in its own session and everything of that session, and wait until all are gone."""
    deadline = time.time() + timeout
    kill_session(proc.pid)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    while session_alive(proc.pid) and time.time() < deadline:
        kill_session(proc.pid)
        time.sleep(0.2)
