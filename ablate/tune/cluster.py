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


def check_address(address: str) -> None:
    """Fail fast, in one line, when a host:port cluster address does not answer (Ray would retry for minutes).

    Raises:
        UsageError: Nothing listens at the address.
    """
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=3).close()
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot reach a Ray cluster at {address!r} ({err}): start one with `ray start --head` "
                         "or pass --address auto on a cluster node") from None


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
    except ConnectionError as err:
        raise UsageError(f"cannot connect to Ray at {settings.address!r}: {error_summary(err)}") from None
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
