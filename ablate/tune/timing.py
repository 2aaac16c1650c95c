"""Latency and throughput of every trained model, measured side by side on one worker once training is over."""

from __future__ import annotations

import ray

from ablate.costs import measure
from ablate.models import BlockConfig, build_model
from ablate.tune.settings import RunSettings
from ablate.tune.trainables import prepare


def time_models(configs: list[str], settings: RunSettings, batch_size: int = 64) -> dict[str, dict[str, float]]:
    """Latency and throughput of every distinct block, one after another on one worker with nothing else running.

    Timing inside the trials would measure whatever else shared the machine at that moment; timing them here,
    side by side under the same conditions, makes the ratios between rows meaningful.
    """
    _, data, device = prepare(settings)
    timings = {}
    for config in configs:
        model = build_model(BlockConfig.parse(config), settings.macro, data.num_classes)
        costs = measure(model, data.input_size, device=device, batch_size=batch_size, repeats=10)
        timings[config] = {"latency_ms": costs.latency_ms, "throughput": costs.throughput}
    return timings


def timing_task(resources: dict[str, float], models: int):
    """``time_models`` as a Ray task holding one training's resources, taken once every training has ended.

    A task, not an actor: it runs in a worker the run's jobs have already warmed (torch, timm and the data
    imported), where an actor would start a process of its own and import them all again (seconds of CPU per run,
    taken from the trainings on a small machine). Never retried: a timer that dies leaves the table's latency
    columns as an earlier session timed them, or empty.
    """
    return ray.remote(time_models).options(num_cpus=resources["cpu"], num_gpus=resources["gpu"], max_retries=0,
                                           name=f"time {models} models side by side")
