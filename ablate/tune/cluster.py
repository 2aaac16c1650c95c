"""Ray's side of a run: joining a cluster or starting a local Ray, and sizing each trial's share of it."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import ray

from ablate.errors import UsageError, error_summary
from ablate.plugins import runtime_env
from ablate.tune.settings import RunSettings

RAY_ENVIRONMENT = {
    "RAY_AIR_NEW_OUTPUT": "0",  # with verbose=0, Ray's legacy output is silent; ours is the progress line
    "TUNE_GLOBAL_CHECKPOINT_S": "2",  # Ray's experiment snapshot: fresh enough for a driver kill
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
        if self.config is not None:
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


def check_token(gcs_address: str) -> None:
    """Ask the cluster's GCS whether it accepts this driver's token (an instant refusal instead of Ray's retries).

    Raises:
        UsageError: The cluster wants a token and ours is missing or different.
    """
    probe = ray_internals().gcs_client
    if probe is None:
        return
    try:
        probe(address=gcs_address)
    except ray.exceptions.AuthenticationError:
        what = "is wrong" if token_available() else "is missing"
        raise UsageError(f"the Ray cluster at {gcs_address} refused the connection: its authentication token {what}; "
                         f"run `ray get-auth-token` on the head node and pass the token through {TOKEN_SOURCES}"
                         ) from None


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
        UsageError: The cluster cannot be reached or refuses the connection.
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
    except (ConnectionError, ray.exceptions.AuthenticationError) as err:
        hint = f" (if the cluster uses token authentication: pass its token through {TOKEN_SOURCES})"
        raise UsageError(f"cannot connect to Ray at {settings.address!r}: {error_summary(err)}{hint}") from None
    return getattr(context, "dashboard_url", None) or None


def trial_resources(settings: RunSettings) -> dict[str, float]:
    """CPUs and GPUs of one trial (and of one baseline or timing task); GPUs default to 1 on a GPU cluster."""
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
