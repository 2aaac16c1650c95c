"""How long a run's trainings take on the hardware at hand, before any is trained.

Per model: the seconds its trainings took in earlier runs of the same protocol and macro, where there are any;
otherwise measured here, by timing a few optimizer steps of the model on a protocol-sized batch (one thread, as a
worker with one CPU trains) and an evaluation batch, scaled to the protocol's steps and evaluations, plus counting
its costs as a worker does before it trains. A run's wall time is then the makespan of its trainings on the
workers it has, in the order it submits them (the baselines and the ablation seeds first, as Ray tasks, then Tune's
trials), plus the run's own fixed work (Ray's start-up, the side-by-side timing, the report), taken from earlier
runs' wall clocks where there are any.
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from ablate.models import BlockConfig
from ablate.protocols import Protocol

STEPS_TIMED = 5  # after one warm-up step: the median of these
FIXED_SECONDS_PER_MODEL = 1.5  # side-by-side latency and throughput of one config at the end of a run
START_SECONDS = 20.0  # a local Ray's start-up, its workers' first imports and the report, when no run says


@dataclass(frozen=True)
class ModelTime:
    """Seconds one training of a config takes: ``train`` (its epochs: steps and evaluations), ``setup`` (costs
    counted, checkpoints, filing), and where the numbers come from (``measured`` or ``earlier runs``)."""

    config: str
    train: float
    setup: float
    source: str
    macs: float = math.nan

    @property
    def total(self) -> float:
        return self.train + self.setup


def measure_model(block: BlockConfig, protocol: Protocol, data, device: torch.device) -> ModelTime:
    """Time a few training steps and one evaluation batch of ``block`` here, scaled to the protocol.

    Args:
        block: The config.
        protocol: Its recipe on the run's macro (``protocol.macro``).
        data: The run's splits (``load_protocol_data``).
        device: Where the workers train.
    """
    from ablate.costs import count_ops
    from ablate.training import EVAL_BATCH_SIZE, make_run, make_step, steps_per_epoch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        started = time.perf_counter()
        run = make_run(block, protocol, data, device, seed=0)
        macs = float(count_ops(run.model, data.input_size)[0])
        setup = time.perf_counter() - started
        step = make_step(run, nn.CrossEntropyLoss(), run.model, device)
        images, labels = next(iter(data.loader("train", protocol.batch_size, train=True, generator=run.generator,
                                               augmentation=protocol.augmentation)))
        times = []
        for _ in range(STEPS_TIMED + 1):
            tick = time.perf_counter()
            step(images, labels).item()
            times.append(time.perf_counter() - tick)
        step_seconds = sorted(times[1:])[len(times) // 2 - 1]
        run.model.eval()
        batch = next(iter(data.loader("val", EVAL_BATCH_SIZE)))[0]
        with torch.no_grad():
            tick = time.perf_counter()
            run.model(batch)
            eval_seconds = (time.perf_counter() - tick) * math.ceil(data.size("val") / EVAL_BATCH_SIZE)
    finally:
        torch.set_num_threads(threads)
    train = protocol.epochs * (steps_per_epoch(protocol, data) * step_seconds + eval_seconds) + eval_seconds
    return ModelTime(str(block), train, setup, "measured", macs)


@dataclass
class Schedule:
    """Trainings put on ``workers`` workers in submission order, each on the first worker free (as Ray does)."""

    workers: int
    busy: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        if len(self.busy) < self.workers:
            heapq.heappush(self.busy, seconds)
        else:
            heapq.heappush(self.busy, heapq.heappop(self.busy) + seconds)

    @property
    def makespan(self) -> float:
        return max(self.busy, default=0.0)


def wall_seconds(trainings: list[float], workers: int, configs: int, fixed: float | None = None) -> float:
    """A run's projected wall time: its trainings' makespan on ``workers``, the side-by-side timing of its
    ``configs``, and its fixed start-up and report (``fixed``, from earlier runs; a default otherwise)."""
    schedule = Schedule(max(1, workers))
    for seconds in trainings:
        schedule.add(seconds)
    return schedule.makespan + FIXED_SECONDS_PER_MODEL * configs + (START_SECONDS if fixed is None else fixed)
