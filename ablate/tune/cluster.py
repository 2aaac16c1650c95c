"""Ray's side of a run: joining a cluster or starting a local Ray, and sizing each trial's share of it."""

from __future__ import annotations

import os
import socket
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import ray

from ablate.core.errors import UsageError, error_summary
from ablate.models import BlockConfig
from ablate.plugins import runtime_env
from ablate.tune.settings import RunSettings
from ablate.tune.trainables import worker_memory

RAY_ENVIRONMENT = {
    "RAY_AIR_NEW_OUTPUT": "0",  # with verbose=0, Ray's legacy output is silent; ours is the progress line
    "TUNE_GLOBAL_CHECKPOINT_S": "2",  # Ray's experiment snapshot: fresh enough for a driver kill
    "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",  # a failed attempt is one line (ablate.tune.faults), its traceback in the
    # trial's error.txt; a trial out of attempts is a row with its reason
}


AUTH_MODE = "RAY_AUTH_MODE"
TOKEN_SOURCES = "the RAY_AUTH_TOKEN variable, a file named by RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token"


def token_available() -> bool:
    """Whether a Ray auth token is at hand the usual Ray ways (``TOKEN_SOURCES``)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    return Path(path).is_file()


def use_token_auth() -> None:
    """Turn on Ray's token mode for this process when a token is available and the user has not chosen a mode.

    Ray 2.60 does this by itself for a local ``ray.init()`` and for ``address="auto"``, but not for ``HOST:PORT``,
    where a token-protected cluster then refuses the driver after ~30 s of retries. Called only where Ray is started
    (:func:`init_ray`); :func:`check_address` switches the mode on just for its probe.
    """
    if os.environ.get(AUTH_MODE) is None and token_available():
        os.environ[AUTH_MODE] = "token"
        ray_internals().refresh_config()


@contextmanager
def token_mode() -> Iterator[None]:
    """Ray's token mode on while the block runs (as :func:`use_token_auth` would set it), the environment as it was
    afterwards."""
    before = os.environ.get(AUTH_MODE)
    use_token_auth()
    try:
        yield
    finally:
        if before is None and os.environ.pop(AUTH_MODE, None) is not None:
            ray_internals().refresh_config()


@dataclass(frozen=True)
class RayInternals:
    """The two private pieces of Ray that token probing needs, found in one place: ``ray._raylet.Config`` (Ray caches
    its auth mode at import; its own token set-up re-reads it with ``Config.initialize``) and
    ``ray._raylet.GcsClient`` (it answers an auth probe at once, where ``ray.init`` retries for ~30 s).
    ``tests/test_cluster_units.py`` fails loudly if a Ray upgrade moves them."""

    config: Any  # None where this Ray has no such thing: its config is then not refreshed
    gcs_client: Any  # None likewise: no instant probe, Ray's own retries decide

    def refresh_config(self) -> None:
        """Make Ray re-read its auth settings — never under a live connection of this process (a notebook's
        ``ray.init()``, a test session's local Ray): its new workers would then present another token and be
        refused (InvalidAuthToken)."""
        if self.config is not None and not ray.is_initialized():
            self.config.initialize("")


def ray_internals() -> RayInternals:
    """The private Ray pieces token probing uses (see :class:`RayInternals`); a piece this Ray lacks is None."""
    import ray._raylet as raylet

    config = getattr(raylet, "Config", None)
    return RayInternals(config if callable(getattr(config, "initialize", None)) else None,
                        getattr(raylet, "GcsClient", None))


def check_address(address: str) -> None:
    """Fail fast, in one line, when a cluster address does not answer or refuses our token (Ray would retry).

    Raises:
        UsageError: Nothing listens at the address, or the cluster's GCS rejects the authentication token.
    """
    if address == "auto":
        return
    scheme, _, hostport = address.rpartition("://")
    host, _, port = hostport.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=3).close()
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot reach a Ray cluster at {address!r} ({err}): start one with `ray start --head` "
                         "or pass --address auto on a cluster node") from None
    if not scheme:  # HOST:PORT is the cluster's GCS, which answers an auth probe at once (ray:// is Ray Client's)
        with token_mode():
            check_token(hostport)


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """The process's standard error (file descriptor 2, where Ray's C++ core logs) sent to /dev/null in the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check_token(gcs_address: str) -> None:
    """Ask the cluster's GCS whether it accepts this driver's token (an instant refusal instead of Ray's retries).

    Raises:
        UsageError: The cluster wants a token and ours is missing or different, or what listens there is not a
            Ray cluster's GCS (it does not answer as one within ``PROBE_TIMEOUT_S``).
    """
    probe = ray_internals().gcs_client
    if probe is None:
        return
    answer: list[BaseException | None] = []

    def ask() -> None:
        try:
            probe(address=gcs_address)
            answer.append(None)
        except BaseException as err:  # handed to the caller's thread
            answer.append(err)

    thread = threading.Thread(target=ask, daemon=True, name="ablate-gcs-probe")  # left behind if it hangs: daemon
    with quiet_stderr():  # Ray's C++ client logs each failed try there; the answer is the one line below
        thread.start()
        thread.join(PROBE_TIMEOUT_S)
    err = answer[0] if answer else TimeoutError(f"no answer within {PROBE_TIMEOUT_S:g} s")
    if isinstance(err, ray.exceptions.AuthenticationError):
        what = "is wrong" if token_available() else "is missing"
        raise UsageError(f"the Ray cluster at {gcs_address} refused the connection: its authentication token {what}; "
                         f"run `ray get-auth-token` on the head node and pass the token through {TOKEN_SOURCES}"
                         ) from None
    if err is not None:
        raise UsageError(f"nothing at {gcs_address} answers as a Ray cluster ({error_summary(err)}): pass the head "
                         f"node's GCS address (`ray status` on the head node shows it; port 6379 by default), or "
                         f"--address auto on a cluster node") from None


PROBE_TIMEOUT_S = 15.0  # a GCS answers at once; something else listening at the address keeps Ray waiting ~40 s


_TEMP_DIRS_SET: set[str] = set()  # the RAY_TMPDIR values init_ray set (a user's own is left alone)


def ray_temp_dir(results_dir: Path) -> str | None:
    """Where a local Ray keeps its sessions (``$RAY_TMPDIR``): results/.ray, when the path is short enough for the
    unix sockets Ray puts below it (~107 bytes in all); None leaves Ray's default."""
    path = (results_dir / ".ray").resolve()
    return str(path) if len(str(path)) <= 36 else None


def init_ray(settings: RunSettings) -> str | None:
    """Connect to ``settings.address`` or start a local Ray, with the run's plugins shipped to every node (Ray's
    ``runtime_env``: each worker then imports them before it builds a model).

    Returns:
        The dashboard's host:port, if a dashboard runs.

    Raises:
        UsageError: A local Ray cannot start (its node start-up timed out, a port is taken, …), or the cluster
            cannot be reached, does not answer as one, or refuses the connection (one line: the cause, what to try).
    """
    for key, value in RAY_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    if ray.is_initialized():
        return None
    if settings.address:
        use_token_auth()  # for the whole driver: Ray starts here
        check_address(settings.address)
    local = {} if settings.address else {"include_dashboard": settings.dashboard, "dashboard_host": "127.0.0.1"}
    temp_dir = None if settings.address else ray_temp_dir(settings.run_dir.parent)
    if temp_dir and os.environ.get("RAY_TMPDIR") in (None, *_TEMP_DIRS_SET):  # never override the user's own
        os.environ["RAY_TMPDIR"] = temp_dir
        _TEMP_DIRS_SET.add(temp_dir)
    try:
        context = ray.init(address=settings.address, log_to_driver=False, logging_level="ERROR",
                           runtime_env=runtime_env(settings.every_plugin), **local)
    except Exception as err:  # Ray says a failed start or join with many kinds (Exception, RuntimeError, …)
        ray.shutdown()  # what a half-started local Ray had started goes with it
        raise UsageError(start_failure(settings.address, err)) from None
    return getattr(context, "dashboard_url", None) or None


# What to try when Ray cannot start on this machine, by words of its error (the first that matches)
START_HINTS = {
    "timed out": "the machine was too busy (or short of memory) to start Ray's processes in time: try again when it "
                 "is less loaded, or start Ray once with `ray start --head` and join it with --address auto",
    "already in use": "a port Ray needs is taken, most likely by another Ray on this machine: stop it (`ray stop`) "
                      "or join it with --address auto",
    "no space left": "the disk under Ray's session folder is full: free space, or point RAY_TMPDIR elsewhere",
}
START_HINT = ("see the logs in Ray's session folder (session_latest/logs under RAY_TMPDIR, /tmp/ray by default); "
              "`ray stop` clears a half-started Ray")


def start_failure(address: str | None, err: BaseException) -> str:
    """The one line of a Ray that cannot start here (``address`` None) or cannot be joined: Ray's own first line
    and what to try."""
    summary = error_summary(err)
    if address:
        return (f"cannot connect to Ray at {address!r} ({summary}): check the address and that the cluster is up "
                f"(`ray status` on its head node); if it uses token authentication, pass its token through "
                f"{TOKEN_SOURCES}")
    hint = next((h for words, h in START_HINTS.items() if words in summary.lower()), START_HINT)
    return f"Ray could not start on this machine ({summary}): {hint}"


def trial_resources(settings: RunSettings, budget: MemoryBudget | None = None) -> dict[str, float]:
    """CPUs and GPUs of one trial (and of one baseline or timing task); GPUs default to 1 on a GPU cluster. With a
    measured ``budget``, also the memory each training reserves (Ray's ``memory`` resource, in bytes), so that Ray
    starts no more trainings on a node than its memory holds."""
    gpus = settings.gpus_per_trial
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    resources = {"cpu": settings.cpus_per_trial, "gpu": gpus}
    return {**resources, "memory": budget.request} if budget else resources


def default_concurrency(resources: dict[str, float]) -> int:
    """As many trials as the cluster's CPUs (or GPUs, when trials use them, and memory, when they reserve it) fit at
    once."""
    total = ray.cluster_resources()
    slots = [int(total.get("CPU", 1) // resources["cpu"])] if resources["cpu"] else []
    if resources["gpu"]:
        slots.append(int(total.get("GPU", 0) // resources["gpu"]))
    if resources.get("memory"):
        slots.append(int(total.get("memory", 0) // resources["memory"]))
    return max(1, min(slots) if slots else 1)


MEMORY_MARGIN = 1.5  # a training reserves its worker's measured peak × this: a whole training (every evaluation,
# its checkpoints, the per-image hits) peaks above the few steps measured: 1.45 GB vs 1.25 GB (relu-dwconv-w1),
# 1.25 vs 1.19 GB (ResNet50's block) on digits
GB = 1e9


@dataclass(frozen=True)
class MemoryBudget:
    """The memory of the run's trainings: what one worker used, what each training reserves, what Ray has.

    Attributes:
        worker_peak: Peak resident memory (bytes) of the worker that prepared the run's first model and took a few
            of its training steps (:func:`ablate.tune.trainables.worker_memory`).
        request: What each training reserves from Ray's ``memory`` resource: ``worker_peak × MEMORY_MARGIN``, at
            most the largest node's ``node_memory`` (so that no training is left unschedulable).
        node_memory: Ray's ``memory`` resource on the largest node: what Ray lets its workers use there (its share
            of the memory that was free when the node started).
        model: The config measured.
    """

    worker_peak: int
    request: int
    node_memory: int
    model: str

    def text(self) -> str:
        return (f"each worker peaks at {self.worker_peak / GB:.1f} GB (measured on {self.model}), reserves "
                f"{self.request / GB:.1f} GB of the node's {self.node_memory / GB:.1f} GB for Ray's workers")


def node_memory() -> int:
    """Ray's ``memory`` resource of the largest live node (bytes; 0 when Ray reports none)."""
    return int(max((node["Resources"].get("memory", 0) for node in ray.nodes() if node.get("Alive")), default=0))


def memory_budget(worker_peak: int, model: str) -> MemoryBudget:
    """The budget of a measured worker peak on the cluster Ray runs now (see :class:`MemoryBudget`)."""
    largest = node_memory()
    request = int(worker_peak * MEMORY_MARGIN)
    return MemoryBudget(worker_peak, min(request, largest) if largest else request, largest, model)


def measure_memory(settings: RunSettings, resources: dict[str, float], block: BlockConfig) -> MemoryBudget | None:
    """Measure what a training's worker needs, on a worker with a training's resources, before any training starts
    (:func:`ablate.tune.trainables.worker_memory` on ``block``, the run's first model); None, said in one line, when
    the measurement itself fails (the trainings then reserve no memory, and file their own failures)."""
    probe = ray.remote(worker_memory).options(num_cpus=resources["cpu"], num_gpus=resources["gpu"],
                                              name=f"measure the worker memory of {block}")
    try:
        peak = ray.get(probe.remote(settings, block))
    except Exception as err:
        print(f"[ablate] warning: the memory of a worker training {block} could not be measured "
              f"({error_summary(err)}): trainings reserve no memory", flush=True)
        return None
    return memory_budget(peak, str(block))


def concurrency_line(workers: int, resources: dict[str, float], budget: MemoryBudget | None) -> str:
    """The progress line that says how many trainings run at once and what bounds it."""
    memory = f"; {budget.text()}" if budget else "; worker memory not measured, trainings reserve none"
    return (f"[ablate] {workers} training{'s' if workers != 1 else ''} at once ({resources['cpu']:g} CPU, "
            f"{resources['gpu']:g} GPU per training{memory})")
