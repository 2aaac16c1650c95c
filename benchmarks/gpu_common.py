"""bench_gpu's shared parts: the run's settings, a report section, the time budget, and the timing helpers."""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd
import torch

import ablate  # noqa: F401  (registers resnet50_max / resnet50_hybrid with timm)
from ablate.models import BASELINES

PROTOCOL = "cifar10"
SPACE = "full"
MODELS = (str(BASELINES["ResNet50"]), str(BASELINES["R50-max"]), str(BASELINES["R50-hybrid"]),
          "relu-dwconv-w1", "multiply-dwconv-w1", "hardball-twist-w1")
COMPILE_ORDER = ("hardball-twist-w1", "multiply-dwconv-w1", str(BASELINES["ResNet50"]), str(BASELINES["R50-max"]),
                 str(BASELINES["R50-hybrid"]), "relu-dwconv-w1")  # the ops most likely to misbehave first
DISPLAY = {str(config): name for name, config in BASELINES.items()}
LATENCY_MODELS = {"resnet50": "R50", "resnet50_max": "R50-max", "resnet50_hybrid": "R50-hybrid"}  # timm → CSV name
SECTIONS = ("peak", "trainer", "compile", "mfu", "latency", "full", "packing")  # report order; compile runs last
TARGET_RATIO = 0.95
SEED = 0
DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


@dataclass(frozen=True)
class Settings:
    """Sizes of every section; ``full()`` is the GPU run, ``smoke_run()`` the CPU run CI exercises."""

    device: torch.device
    smoke: bool
    macro: str = "cifar-resnet50"  # the cifar10 protocol's macro
    batch_size: int = 128  # the cifar10 protocol's batch size
    steps: int = 20  # timed steps per round and path
    rounds: int = 6  # interleaved rounds per path (median)
    models: tuple[str, ...] = MODELS
    compile_models: tuple[str, ...] = COMPILE_ORDER
    compile_backend: str = "inductor"
    full_macro: str = "cifar"  # the space's default macro: 90 configs × 50 steps fit the budget
    full_batch: int = 128
    full_steps: int = 50
    full_configs: int | None = None  # None: all of the space
    latency_size: int = 224
    latency_batch: int = 256
    latency_repeats: int = 20
    latency_rounds: int = 2
    matmul_size: int = 8192
    budget_s: float = 270.0  # 0: no limit; an item is started only if it should end inside it
    cpu_threads: int | None = None  # torch threads on CPU; the smoke takes 1 (2 oversubscribe a shared 2-core box)
    packing_protocol: str = "cifar10-fast"
    packing_counts: tuple[int, ...] = (1, 2, 4, 8)
    packing_batches: int = 20  # train batches per pass (synthetic data on the device)
    packing_passes: int = 3  # timed passes per worker
    packing_batch_size: int | None = None  # None: the protocol's
    packing_macro: str | None = None  # None: the qlblock space's macro for the protocol

    @classmethod
    def full(cls, device: torch.device) -> "Settings":
        return cls(device, smoke=False)

    @classmethod
    def smoke_run(cls, device: torch.device) -> "Settings":
        return cls(device, smoke=True, macro="cifar-tiny", batch_size=8, steps=2, rounds=2,
                   compile_models=("hardball-twist-w1",), compile_backend="aot_eager", full_macro="cifar-tiny",
                   full_batch=8, full_steps=3, full_configs=6, latency_size=32, latency_batch=2, latency_repeats=2,
                   latency_rounds=1, matmul_size=512, budget_s=0.0, cpu_threads=1, packing_counts=(1, 2),
                   packing_batches=2, packing_passes=1, packing_batch_size=8, packing_macro="cifar-tiny")


@dataclass
class Section:
    """One part of the report: a title, what was measured, a table, and the lines that state targets."""

    key: str
    title: str
    notes: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None
    targets: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        parts = [f"## {self.title}", ""]
        parts += [f"{line}  " for line in self.notes] + ([""] if self.notes else [])
        if self.table is not None and len(self.table):
            parts += [self.table.to_markdown(index=False, floatfmt=".4g"), ""]
        parts += [f"- {line}" for line in self.targets] + ([""] if self.targets else [])
        return "\n".join(parts)

    def text(self) -> str:
        lines = [f"== {self.title} ==", *self.notes]
        if self.table is not None and len(self.table):
            lines.append(self.table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        return "\n".join(lines + [f"* {line}" for line in self.targets])


class Clock:
    """The time budget: sections ask before each item whether it still fits."""

    def __init__(self, budget_s: float):
        self.start, self.budget_s = time.perf_counter(), budget_s
        self.last = self.start

    def lap(self) -> float:
        """Seconds since the previous lap (or the start)."""
        now = time.perf_counter()
        seconds, self.last = now - self.last, now
        return seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def fits(self, estimate_s: float = 0.0) -> bool:
        """Whether an item expected to take ``estimate_s`` (the longest like it so far) ends inside the budget."""
        return self.budget_s <= 0 or self.elapsed() + estimate_s <= self.budget_s

    def skipped(self, what: str, estimate_s: float = 0.0) -> str:
        return (f"{what}: skipped, it would not end inside the time budget of {self.budget_s:.0f} s "
                f"({self.elapsed():.0f} s elapsed, ~{estimate_s:.0f} s an item)")


# --- timing helpers ---


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], int], device: torch.device) -> tuple[float, int]:
    """Seconds and images of one call of ``fn`` (which returns images processed), synchronized on both ends."""
    synchronize(device)
    start = time.perf_counter()
    images = fn()
    synchronize(device)
    return time.perf_counter() - start, images


def interleaved_rates(paths: dict[str, Callable[[], int]], rounds: int, device: torch.device) -> dict[str, float]:
    """Median images/s per path over rounds run A, B, …, then …, B, A (ABBA), so drift hits every path alike."""
    names = list(paths)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            seconds, images = timed(paths[name], device)
            rates[name].append(images / seconds)
    return {name: statistics.median(values) for name, values in rates.items()}


def failure(err: BaseException) -> str:
    """``Type: first line of the message`` (shortened), for a table cell."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:160] if lines else ''}"


def free_memory(device: torch.device) -> None:
    """Between models: drop compiled graphs and cached blocks so each model starts alike."""
    torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def matmul_peak(device: torch.device, n: int, dtype: torch.dtype, repeats: int = 20) -> float:
    """FLOP/s of an n×n×n ``torch.mm`` in ``dtype`` (2n³ FLOP each), after a warm-up."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)

    def run(count: int) -> int:
        for _ in range(count):
            torch.mm(a, b)
        return count

    run(3)
    seconds, count = timed(lambda: run(repeats), device)
    return 2 * n ** 3 * count / seconds
