"""Ray's side of a run: joining a cluster or starting a local Ray, and sizing each trial's share of it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import ray

from ablate.errors import UsageError, error_summary
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
    """Turn on Ray's token mode when a token is available and the user has not chosen a mode.

    Ray 2.60 does this by itself for a local ``ray.init()`` and for ``address="auto"``, but not for ``HOST:PORT``,
    where a token-protected cluster then refuses the driver after ~30 s of retries.
    """
    if os.environ.get(AUTH_MODE) is not None or not token_available():
        return
    os.environ[AUTH_MODE] = "token"
    try:  # Ray caches its config at import; refresh it as Ray's own token set-up does
        from ray._raylet import Config

        Config.initialize("")
    except (ImportError, AttributeError):
        pass


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
    use_token_auth()
    if not scheme:  # HOST:PORT is the cluster's GCS, which answers an auth probe at once (ray:// is Ray Client's)
        check_token(hostport)


def check_token(gcs_address: str) -> None:
    """Ask the cluster's GCS whether it accepts this driver's token (an instant refusal instead of Ray's retries).

    Raises:
        UsageError: The cluster wants a token and ours is missing or different.
    """
    from ray._raylet import GcsClient

    try:
        GcsClient(address=gcs_address)
    except ray.exceptions.AuthenticationError:
        what = "is wrong" if token_available() else "is missing"
        raise UsageError(f"the Ray cluster at {gcs_address} refused the connection: its authentication token {what}; "
                         f"run `ray get-auth-token` on the head node and pass the token through {TOKEN_SOURCES}"
                         ) from None


def ray_temp_dir(results_dir: Path) -> dict[str, str]:
    """Ray's session folder under results/.ray when the path is short enough for its unix sockets (~107 bytes)."""
    path = (results_dir / ".ray").resolve()
    return {"_temp_dir": str(path)} if len(str(path)) <= 40 else {}


def init_ray(settings: RunSettings) -> str | None:
    """Connect to ``settings.address`` or start a local Ray.

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
        check_address(settings.address)
    local = {} if settings.address else {"include_dashboard": settings.dashboard, "dashboard_host": "127.0.0.1",
                                         **ray_temp_dir(settings.run_dir.parent)}
    try:
        context = ray.init(address=settings.address, log_to_driver=False, logging_level="ERROR", **local)
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
