import os

# One thread per process for torch (OpenMP) and numpy (OpenBLAS), here and in every process the tests start (CLI
# drivers, Ray's workers): the suite's two xdist workers and Ray's workers share the 2 cores, where a second thread
# spins waiting for a core instead of working. Measured (tests/test_models.py + test_isomacs.py, -n 0) with the other
# core kept busy: 2 threads 44 CPU-s in 38.9 s, 1 thread 22 CPU-s in 22.4 s; on two idle cores 18.3 s against 20.9 s.
# Set before numpy and torch are first imported (they read it once); a Tune trial still sets its own torch threads.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import glob
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """The command line in this process (``ablate.cli.main``, each argument as text): exit code, stdout, stderr."""
    from ablate import cli

    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cli_error(capsys, *argv) -> str:
    """A user mistake on the command line: exit code 2, one line on stderr, no traceback anywhere; that line."""
    code, out, err = run_cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err + out, (code, err)
    return lines[0]


def ablate_command(*args) -> list[str]:
    """``python run_ablation.py ARGS`` as a subprocess runs it (this interpreter, the repository's script)."""
    return [sys.executable, str(ROOT / "run_ablation.py"), *map(str, args)]


def cli_env(results_dir: Path, **env: str | None) -> dict[str, str]:
    """This process's environment for a command-line subprocess: results under ``results_dir``, output unbuffered,
    ``env`` on top (a None value unsets the variable)."""
    full = {**os.environ, "ABLATE_RESULTS_DIR": str(results_dir), "PYTHONUNBUFFERED": "1", **env}
    return {k: v for k, v in full.items() if v is not None}


@pytest.fixture
def results_dir(tmp_path, monkeypatch) -> Path:
    """A fresh results folder, named to the command line through ``ABLATE_RESULTS_DIR`` (not created)."""
    monkeypatch.setenv("ABLATE_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (another process may take it before the caller binds: retry on failure)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


RAY_FIXTURES = {"local_ray", "spawn"}  # a test that uses one of these starts Ray (or a driver that starts its own)


def uses_local_ray(item) -> bool:
    """Whether a test runs on the worker's local Ray (:func:`local_ray`), directly or through another fixture."""
    return item is not None and "local_ray" in item.fixturenames


def pytest_collection_modifyitems(config, items):
    """Order the tests for ``-n 2 --dist worksteal`` (pyproject's addopts), which gives each worker one half of the
    list, and a worker that runs out the back half of what the other has left: each half starts with the slow tests
    (end-to-end runs through Ray, simulations: tens of seconds to two minutes each) of about half the modules and
    ends with fast ones. The long tests then run from the start on both workers and the short ones fill the end, so
    that neither worker ends minutes after the other, and a module's tests stay together, so that its fixtures (a
    two-node cluster, a report built once for its tests) are built on one worker, not on both.

    Two workers may each run a test that starts Ray, each in its own local Ray (:func:`local_ray`). Putting those
    in one xdist group, one at a time on one worker, was the earlier plan: ``--dist loadgroup`` reads the groups
    from test ids that pytest 9.2 no longer lets it rewrite, so it ran as ``--dist load`` all along, and the Ray
    tests, two thirds of the suite's CPU, would have kept one worker busy minutes after the other anyway."""
    def is_slow(item) -> bool:
        return bool(item.get_closest_marker("slow") or item.get_closest_marker("ray") or RAY_FIXTURES
                    & set(item.fixturenames))

    def halves(part: list) -> tuple[list, list]:
        """``part``'s modules dealt into two halves of about equal size, the largest first."""
        modules: dict[str, list] = {}
        for item in part:
            modules.setdefault(item.nodeid.split("::")[0], []).append(item)
        first, second = [], []
        for module in sorted(modules.values(), key=len, reverse=True):
            (first if len(first) <= len(second) else second).extend(module)
        return first, second

    def local_ray_first(half: list) -> list:
        """The tests on the worker's local Ray before the other slow ones: it runs once, then stops (below)."""
        return sorted(half, key=lambda item: not uses_local_ray(item))

    slow = halves([item for item in items if is_slow(item)])
    fast = halves([item for item in items if not is_slow(item)])
    items[:] = local_ray_first(slow[0]) + fast[0] + local_ray_first(slow[1]) + fast[1]


@pytest.fixture(scope="module")
def parallel():
    """Batches of simulated runs: ``parallel(fn, total, *args)`` calls ``fn(batch, total // 2, *args)`` for batches 0
    and 1 and joins their lists. Alone, the batches run at once on the machine's 2 cores (one pool per module, so
    each process's caches, the power factors, are filled once); under xdist, whose other worker has the second core,
    they run one after the other in this process. The same batches either way: the same numbers."""
    batches = 2
    if os.environ.get("PYTEST_XDIST_WORKER"):
        def run_here(fn, total: int, *args) -> list:
            return [x for batch in range(batches) for x in fn(batch, total // batches, *args)]
        yield run_here
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(batches) as pool:
        def run(fn, total: int, *args) -> list:
            parts = pool.map(fn, range(batches), [total // batches] * batches, *[[a] * batches for a in args])
            return [x for part in parts for x in part]
        yield run


# Ray's worker pool as the suite's local Ray keeps it: by default Ray ends a worker idle for a second once more than
# num_cpus workers are alive (a Tune trial's actor counts), so nearly every test started fresh workers, each paying
# ~6 s of CPU to import torch, timm and ablate. Kept warm, a test's baselines, memory probe and timer run in workers
# an earlier test started (measured with -n 0: 18 → 15 processes and -27 % time over three tests of test_tune.py;
# test_tune.py and test_store_runs.py but the kill test, 231 → 204 s); only Tune's trial actors, which Tune ends
# with each run, start afresh.
WARM_WORKERS = {"num_workers_soft_limit": 4, "idle_worker_killing_time_threshold_ms": 3_600_000}


@pytest.fixture
def local_ray():
    """The worker's local Ray (2 CPUs), its idle workers kept warm between tests (:data:`WARM_WORKERS`): started by
    the first test that asks for it and stopped after the last of a row of such tests (:func:`pytest_runtest_teardown`),
    pass or fail. An idle local Ray is not free: its daemons and warm workers poll, ~7 CPU-s a minute on this 2-core
    box (measured with nothing running); kept for the whole session on both workers, as it was, the suite took
    2,110 busy CPU-s, against 1,731 with it stopped after its row (same box and hour, docs/PERFORMANCE.md)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 _system_config=WARM_WORKERS)
    yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Stop the local Ray once the worker's next test does not use it (the order puts such tests in one row)."""
    try:
        return (yield)
    finally:
        if uses_local_ray(item) and not uses_local_ray(nextitem):
            import ray

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


def spawn_cli(spawn, results_dir: Path, *args) -> subprocess.Popen:
    """``python run_ablation.py ARGS`` started through the ``spawn`` fixture, its results under ``results_dir``."""
    return spawn(ablate_command(*args), cwd=ROOT, env=cli_env(results_dir))


def epochs_logged(run_dir: Path, folders: tuple[str, ...] = ("trials",)) -> dict[str, list[int]]:
    """Each model folder's epoch log (``trials/<id>``, and ``baselines/<id>`` when asked): the epochs it trained,
    in order, as ``{"trials/<id>": [1, 2]}``."""
    from ablate.training import read_epoch_log

    return {f"{folder}/{d.name}": [e["epoch"] for e in read_epoch_log(d)]
            for folder in folders for d in (run_dir / folder).glob("*") if d.is_dir()}


def kill_when(driver: subprocess.Popen, run_dir: Path, ready, folders: tuple[str, ...] = ("trials",),
              timeout: float = 300) -> dict[str, list[int]]:
    """SIGKILL a driver's whole session (it, its local Ray, Ray's workers) as soon as ``ready(epoch logs)`` holds;
    returns the epoch logs at the kill, after checking that it held and that nothing of the session is left."""
    deadline = time.time() + timeout
    while time.time() < deadline and driver.poll() is None and not ready(epochs_logged(run_dir, folders)):
        time.sleep(0.1)
    kill_session(driver.pid)
    driver.wait(timeout=30)
    at_kill = epochs_logged(run_dir, folders)
    assert ready(at_kill), (at_kill, driver.stdout.read()[-3000:])
    time.sleep(1)
    assert session_alive(driver.pid) == []
    return at_kill


def one_trial_done_and_the_next_mid_way(logged: dict[str, list[int]]) -> bool:
    """For :func:`kill_when`: one trial has trained both its epochs, the next only its first."""
    return sorted(logged.values()) == [[1], [1, 2]]


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


def postgres_binary(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@pytest.fixture
def postgres():
    """A PostgreSQL server of its own on 127.0.0.1 (trust auth, user and database ``ablate``); yields its URL."""
    initdb, pg_ctl = postgres_binary("initdb"), postgres_binary("pg_ctl")
    if not (initdb and pg_ctl):
        if os.environ.get("CI"):
            pytest.fail("no PostgreSQL server binaries (initdb, pg_ctl) in CI: .ci/run should have installed them")
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql to run this test")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses to run as root
    root = Path(tempfile.mkdtemp(prefix="ablate-pg-"))  # not under pytest's tmp_path: the server's user needs it
    data, log = root / "data", root / "server.log"
    if as_user:
        shutil.chown(root, "postgres")
    started = False
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "ablate", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)
        for attempt in range(3):  # a port taken between our check and the server's bind: try another
            port = free_port()
            proc = subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
                                   f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"],
                                  capture_output=True, timeout=90)
            if proc.returncode == 0:
                started = True
                break
        assert started, log.read_text()[-2000:] if log.exists() else proc.stderr
        subprocess.run([*as_user, postgres_binary("createdb") or "createdb", "-h", "127.0.0.1", "-p", str(port), "-U",
                        "ablate", "ablate"], check=True, capture_output=True, timeout=60)
        yield f"postgresql://ablate@127.0.0.1:{port}/ablate"
    finally:
        if started:
            subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
