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
