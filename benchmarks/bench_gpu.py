"""The GPU path, measured: trainer vs a plain loop, torch.compile, MFU, bf16 stability of every block, latency.

One script, sized for ≤ 5 minutes on one H100-class GPU (``--budget-s``, default 270, guards it: an item starts
only if it should end inside the budget; what does not fit is listed as skipped, never guessed). It prints each
table as it is measured and rewrites ``--out`` (markdown) after every section, so a run cut short still leaves the
sections it finished. Every claim is a ratio measured side by side
in this run; the only outside numbers are the published PfLayer latencies, read from ablate's
``resources/published_results.csv`` and shown in their own column.

Sections:
  peak     — bf16 matmul peak of this device (a big ``torch.mm`` timed), the denominator of MFU;
  trainer  — ablate's trainer path (``make_run`` / ``make_step`` / ``train_epoch`` over a ``TensorSplit`` built by
             ``ablate.data.tensor_splits`` from synthetic uint8 CIFAR-shaped images: the real crop/flip/normalize
             on the device) vs a plain reference loop written here (same model, batch, precision, memory format;
             pre-generated device tensors, no framework), rounds interleaved (ABBA), warm-up excluded;
  compile  — the same with ``torch.compile`` (as ``ablate.training.train`` applies it) on both sides, with the eager
             trainer interleaved for the gain; the first (compiling) step is timed separately;
  mfu      — model FLOP utilisation: 3 × 2 × MACs × img/s over the measured peak (MACs from fvcore via
             ``ablate.costs.count_ops``; element-wise work is not counted);
  full     — 50 steps of every block config of ``search_spaces/full.yaml`` under bf16 autocast through the trainer:
             finite loss and weights, or the failure;
  latency  — ``ablate.costs.measure`` on the device at 224² (batch 1 latency, batch 256 throughput) of timm's
             ``resnet50``, ``resnet50_max``, ``resnet50_hybrid``, ratios to ResNet50 next to the published ratios;
  packing  — N = 1, 2, 4, 8 concurrent training processes of the ``cifar10-fast`` protocol's model on one device
             (``benchmarks/packing.py``): aggregate img/s and peak memory per N, the packing to use
             (``--gpus-per-trial 1/N``), and the projected wall time of ``run_ablation.py --space qlblock
             --protocol cifar10-fast`` on one GPU at that packing.

Targets stated in the output: trainer ≥ 0.95× the reference loop's img/s per model; no non-finite loss in 50 bf16
steps; compile's gain per model.

Usage:
    python benchmarks/bench_gpu.py --out bench_gpu.md            # the GPU run (cuda when available)
    python benchmarks/bench_gpu.py --smoke --out /tmp/smoke.md   # CPU smoke for CI: tiny sizes, not a measurement
    python benchmarks/bench_gpu.py --sections compile,mfu        # a subset (peak and trainer are added for mfu)

Device recipe (the GPU machine has torch, timm, pandas, seaborn, pyyaml but no network and no fvcore; it must not
need Ray, Optuna or scikit-learn, and this script imports none of them):
    bash benchmarks/gpu_wheels.sh          # here: fvcore and its small deps as wheels into .whl/ (git-ignored)
    # on the device (carry .whl), from the repository root, as one command:
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && PYTHONUNBUFFERED=1 python3 benchmarks/bench_gpu.py \
        --out $OUT/bench_gpu.md
"""

from __future__ import annotations

import argparse
import csv
import gc
import math
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pandas as pd
import timm
import torch
import torch.nn.functional as F
from torch import nn

import ablate  # noqa: F401  (registers resnet50_max / resnet50_hybrid with timm)
from ablate.costs import count_ops, measure
from ablate.data import DataRequest, DatasetSplits, seeded_split, tensor_splits
from ablate.files import write_text
from ablate.models import BASELINES, BlockConfig, build_model
from ablate.protocols import Protocol, load_protocol
from ablate.space import load_space
from ablate.training import Precision, Run, choose_precision, make_run, make_step, train_epoch, uses_channels_last

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


# --- data: synthetic CIFAR-shaped uint8 images through ablate.data's real tensor splits ---


def total_for_train(train_images: int, val_fraction: float) -> int:
    """The dataset size whose seeded train split (``ablate.data.seeded_split``) keeps exactly ``train_images``."""
    total = max(train_images, int(train_images / (1 - val_fraction)) - 2)  # just below the answer
    while len(seeded_split(total, val_fraction, SEED)[0]) < train_images:
        total += 1
    return total


def synthetic_splits(protocol: Protocol, device: torch.device, batches: int, seed: int = SEED) -> DatasetSplits:
    """Random uint8 (N, 3, 32, 32) images and labels as ``tensor_splits`` holds them, ``batches`` full train batches."""
    total = total_for_train(batches * protocol.batch_size, protocol.val_fraction)
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (total, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (total,), generator=generator)
    request = DataRequest(Path("."), device, protocol.val_fraction, seed, False, None)
    return tensor_splits(protocol.dataset, 10, images, labels, images[:2], labels[:2], request)


def reference_batches(data: DatasetSplits, batch_size: int, channels_last: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Pre-generated, normalized device batches of the train split for the plain loop (no augmentation)."""
    split = data.splits["train"]
    mean = torch.tensor(data.mean, device=data.device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=data.device).view(1, -1, 1, 1)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    images = ((split.images.float() / 255 - mean) / std).contiguous(memory_format=memory_format)
    return [(images[i:i + batch_size], split.labels[i:i + batch_size])
            for i in range(0, len(split) - batch_size + 1, batch_size)]


# --- the two training paths ---


@dataclass
class TrainerPath:
    """ablate's trainer as ``train()`` drives it: make_run, make_step, train_epoch over TensorSplit data."""

    run: Run
    step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    protocol: Protocol
    data: DatasetSplits
    first: DatasetSplits

    @classmethod
    def build(cls, config: BlockConfig, protocol: Protocol, data: DatasetSplits, first: DatasetSplits,
              compile_backend: str | None = None) -> "TrainerPath":
        run = make_run(config, protocol, data, data.device, SEED)
        forward = torch.compile(run.model, backend=compile_backend) if compile_backend else run.model
        step = make_step(run, nn.CrossEntropyLoss(label_smoothing=protocol.label_smoothing), forward, data.device)
        return cls(run, step, protocol, data, first)

    def epoch(self, data: DatasetSplits | None = None) -> int:
        """One pass over the split (the timed one by default); ``train_epoch`` syncs once, at its end."""
        data = self.data if data is None else data
        loss, seen = train_epoch(self.run, self.step, self.protocol, data, data.device)
        if not math.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss {loss} in the trainer path")
        return seen

    def first_step(self) -> int:
        return self.epoch(self.first)


@dataclass
class ReferenceLoop:
    """A plain hand-written loop: the same model, batch, precision and memory format; device tensors, no framework."""

    model: nn.Module
    forward: nn.Module
    optimizer: torch.optim.Optimizer
    batches: list[tuple[torch.Tensor, torch.Tensor]]
    dtype: torch.dtype | None

    @classmethod
    def build(cls, config: BlockConfig, protocol: Protocol, trainer: TrainerPath,
              compile_backend: str | None = None) -> "ReferenceLoop":
        device = trainer.data.device
        channels_last = uses_channels_last(protocol, device)
        torch.manual_seed(SEED)
        model = build_model(config, protocol.macro, trainer.data.num_classes).to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        decayed = [p for p in model.parameters() if p.ndim > 1]  # no decay on biases and BN, as the trainer
        groups = [{"params": decayed, "weight_decay": protocol.weight_decay},
                  {"params": [p for p in model.parameters() if p.ndim <= 1], "weight_decay": 0.0}]
        optimizer = torch.optim.SGD(groups, lr=protocol.lr, momentum=protocol.momentum, nesterov=protocol.nesterov)
        forward = torch.compile(model, backend=compile_backend) if compile_backend else model
        batches = reference_batches(trainer.data, protocol.batch_size, channels_last)
        return cls(model, forward, optimizer, batches, trainer.run.precision.dtype)

    def steps(self, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> int:
        self.model.train()
        device_type = batches[0][0].device.type
        for images, labels in batches:
            with torch.autocast(device_type, dtype=self.dtype, enabled=self.dtype is not None):
                loss = F.cross_entropy(self.forward(images), labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return sum(len(labels) for _, labels in batches)

    def epoch(self) -> int:
        return self.steps(self.batches)

    def first_step(self) -> int:
        return self.steps(self.batches[:1])


# --- sections ---


def describe_precision(protocol: Protocol, device: torch.device) -> str:
    """The precision and memory format the trainer chooses for ``protocol`` on ``device``."""
    names = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast + GradScaler"}
    dtype = names[choose_precision(protocol, device).dtype]
    return f"{dtype}, {'channels_last' if uses_channels_last(protocol, device) else 'contiguous (NCHW)'}"


def peak_dtype(settings: Settings) -> torch.dtype:
    """The trainer's compute dtype in the trainer section: bf16 on a GPU with bf16, fp32 on CPU (no AMP there)."""
    return choose_precision(trainer_protocol(settings), settings.device).dtype or torch.float32


def peak_section(settings: Settings) -> tuple[Section, float]:
    dtype = peak_dtype(settings)
    peak = matmul_peak(settings.device, settings.matmul_size, dtype)
    n = settings.matmul_size
    notes = [f"{n}×{n}×{n} {DTYPE_NAMES[dtype]} torch.mm, 20 timed after 3 warm-up: **{peak / 1e12:.4g} TFLOP/s** "
             f"(the trainer's compute dtype on this device)"]
    return Section("peak", "Matmul peak (the MFU denominator)", notes), peak


@dataclass
class ModelRates:
    """The rates of one model in the trainer / compile sections (images per second)."""

    config: str
    rates: dict[str, float]
    first_step_s: dict[str, float] = field(default_factory=dict)
    macs: int = 0


def prepare(paths: dict[str, Any], device: torch.device) -> dict[str, float]:
    """Each path's first step (compile and autotuning happen here), timed; then one untimed warm-up epoch."""
    first = {name: timed(path.first_step, device)[0] for name, path in paths.items()}
    for path in paths.values():
        path.epoch()
    return first


def trainer_paths(config: BlockConfig, protocol: Protocol, data: DatasetSplits, first: DatasetSplits,
                  backend: str | None, with_eager_trainer: bool) -> dict[str, Any]:
    """Trainer and reference loop, both compiled with ``backend`` (None: eager); optionally an eager trainer too."""
    trainer = TrainerPath.build(config, protocol, data, first, backend)
    paths: dict[str, Any] = {"trainer": trainer, "reference": ReferenceLoop.build(config, protocol, trainer, backend)}
    if with_eager_trainer:
        paths["trainer-eager"] = TrainerPath.build(config, protocol, data, first, None)
    return paths


def measure_model(config: BlockConfig, protocol: Protocol, data: DatasetSplits, first: DatasetSplits,
                  settings: Settings, backend: str | None) -> ModelRates:
    paths = trainer_paths(config, protocol, data, first, backend, with_eager_trainer=backend is not None)
    first_step = prepare(paths, settings.device)
    rates = interleaved_rates({name: path.epoch for name, path in paths.items()}, settings.rounds, settings.device)
    model = paths["trainer"].run.model
    macs = count_ops(model, data.input_size)[0]
    return ModelRates(str(config), rates, first_step, macs)


def trainer_protocol(settings: Settings) -> Protocol:
    protocol = load_protocol(PROTOCOL)
    return protocol.with_overrides(macro=settings.macro, batch_size=settings.batch_size)


def run_models(settings: Settings, clock: Clock, models: Sequence[str], backend: str | None
               ) -> tuple[list[ModelRates], list[str], Protocol, DatasetSplits]:
    protocol = trainer_protocol(settings)
    data = synthetic_splits(protocol, settings.device, settings.steps)
    first = synthetic_splits(protocol, settings.device, 1, seed=SEED + 1)
    results, problems, longest = [], [], 0.0
    for name in models:
        if not clock.fits(longest):
            problems.append(clock.skipped(display(name), longest))
            continue
        start = time.perf_counter()
        try:
            results.append(measure_model(BlockConfig.parse(name), protocol, data, first, settings, backend))
        except Exception as err:  # a failing model is a finding to report; the other models still run
            problems.append(f"{display(name)}: FAILED, {failure(err)}")
        free_memory(settings.device)
        longest = max(longest, time.perf_counter() - start)
    return results, problems, protocol, data


def display(config: str) -> str:
    return f"{DISPLAY[config]} ({config})" if config in DISPLAY else config


def ratio_target(ratios: dict[str, float], what: str) -> str:
    below = [f"{display(c)} {r:.3f}" for c, r in ratios.items() if not r >= TARGET_RATIO]
    verdict = "met for every model" if not below else f"NOT met for {', '.join(below)}"
    return f"Target {what}: trainer ≥ {TARGET_RATIO}× the reference loop's img/s per model — {verdict} ({len(ratios)} measured)"


def setting_notes(settings: Settings, protocol: Protocol, data: DatasetSplits) -> list[str]:
    return [f"protocol `{PROTOCOL}`'s setting: macro `{protocol.macro}`, 32², batch {protocol.batch_size}, "
            f"{describe_precision(protocol, data.device)}, SGD nesterov lr {protocol.lr:g} wd {protocol.weight_decay:g} (the trainer adds its "
            f"per-step cosine LambdaLR, on-device crop+flip+normalize and the loss sum)",
            f"{settings.steps} timed steps per round, {settings.rounds} rounds per path interleaved ABBA, median; "
            f"first step and one warm-up epoch excluded; synthetic uint8 CIFAR-shaped data through "
            f"`ablate.data.tensor_splits`"]


def trainer_section(settings: Settings, clock: Clock) -> tuple[Section, list[ModelRates]]:
    results, skipped, protocol, data = run_models(settings, clock, settings.models, None)
    rows = [{"model": display(r.config), "trainer img/s": r.rates["trainer"], "reference img/s": r.rates["reference"],
             "trainer / reference": r.rates["trainer"] / r.rates["reference"]} for r in results]
    ratios = {r.config: r.rates["trainer"] / r.rates["reference"] for r in results}
    section = Section("trainer", "Trainer vs a plain reference loop (eager)", setting_notes(settings, protocol, data),
                      pd.DataFrame(rows), [ratio_target(ratios, "(eager)"), *skipped])
    return section, results


def compile_section(settings: Settings, clock: Clock) -> tuple[Section, list[ModelRates]]:
    results, skipped, protocol, data = run_models(settings, clock, settings.compile_models, settings.compile_backend)
    rows = [{"model": display(r.config), "compiled trainer img/s": r.rates["trainer"],
             "compiled reference img/s": r.rates["reference"],
             "trainer / reference": r.rates["trainer"] / r.rates["reference"],
             "eager trainer img/s": r.rates["trainer-eager"],
             "compile gain (compiled / eager trainer)": r.rates["trainer"] / r.rates["trainer-eager"],
             "first step, trainer (s)": r.first_step_s["trainer"],
             "first step, reference (s)": r.first_step_s["reference"]} for r in results]
    ratios = {r.config: r.rates["trainer"] / r.rates["reference"] for r in results}
    gains = ", ".join(f"{display(r.config)} {r.rates['trainer'] / r.rates['trainer-eager']:.2f}×" for r in results)
    notes = setting_notes(settings, protocol, data) + [
        f"`torch.compile(model, backend={settings.compile_backend!r})` on the forward of both paths (as "
        f"`ablate.training.train` does when a protocol sets `compile: true`); the eager trainer runs interleaved "
        f"with them for the gain; the first step (tracing + compiling) is timed on its own; the reference, built "
        f"second, may reuse the trainer's compiled graph (same architecture), so its first step can be short"]
    section = Section("compile", "torch.compile: trainer vs reference, and the gain over eager", notes,
                      pd.DataFrame(rows), [ratio_target(ratios, "(compiled)"), f"compile gain per model: {gains or '—'}",
                                           *skipped])
    return section, results


def mfu_section(peak: float, eager: list[ModelRates], compiled: list[ModelRates]) -> Section:
    """One row per measured (model, mode): the trainer's img/s turned into achieved FLOP/s over the peak."""
    rows = [{"model": display(r.config), "mode": mode, "MACs / image (G)": r.macs / 1e9,
             "trainer img/s": r.rates["trainer"], "achieved TFLOP/s": 6 * r.macs * r.rates["trainer"] / 1e12,
             "MFU": 6 * r.macs * r.rates["trainer"] / peak}
            for mode, results in (("eager", eager), ("compiled", compiled)) for r in results]
    notes = [f"MFU = 3 × 2 × MACs × img/s / peak, peak = the matmul above ({peak / 1e12:.4g} TFLOP/s); MACs of "
             f"conv/linear by fvcore (`ablate.costs.count_ops`, 32²), element-wise work not counted"]
    return Section("mfu", "Model FLOP utilisation of the trainer", notes, pd.DataFrame(rows))


def bf16_precision(device: torch.device) -> Precision:
    return Precision(torch.bfloat16, torch.amp.GradScaler(device.type, enabled=False))


def weights_finite(model: nn.Module) -> bool:
    return bool(torch.stack([p.detach().isfinite().all() for p in model.parameters()]).all())


def full_space_configs(limit: int | None) -> list[BlockConfig]:
    """The space's grid; with ``limit``, a spread covering every spatial op and nonlinearity at the smallest width."""
    grid = load_space(SPACE).grid()
    if limit is None or limit >= len(grid):
        return grid
    spatials = list(dict.fromkeys(c.spatial for c in grid))
    nonlinearities = list(dict.fromkeys(c.nonlinearity for c in grid))
    width = min(c.width for c in grid)
    picks = [BlockConfig(nonlinearities[i % len(nonlinearities)], s, width) for i, s in enumerate(spatials)]
    return [c for c in picks if c in grid][:limit]


def bf16_steps(config: BlockConfig, protocol: Protocol, data: DatasetSplits) -> dict[str, Any]:
    """One epoch (``full_steps`` steps) of the trainer under bf16 autocast; the loss and weights, or the error."""
    start = time.perf_counter()
    try:
        run = make_run(config, protocol, data, data.device, SEED)
        run.precision = bf16_precision(data.device)
        step = make_step(run, nn.CrossEntropyLoss(label_smoothing=protocol.label_smoothing), run.model, data.device)
        loss, seen = train_epoch(run, step, protocol, data, data.device)
        finite = math.isfinite(loss) and weights_finite(run.model)
        outcome = {"steps": seen // protocol.batch_size, "mean loss": loss, "finite": finite,
                   "failure": "" if finite else "non-finite loss or weights"}
    except Exception as err:  # an OOM or a kernel error is an outcome to report, not a crash of the bench
        outcome = {"steps": 0, "mean loss": math.nan, "finite": False, "failure": failure(err)}
    return {"config": str(config), **outcome, "seconds": time.perf_counter() - start}


def full_section(settings: Settings, clock: Clock) -> Section:
    protocol = load_protocol(PROTOCOL).with_overrides(macro=settings.full_macro, batch_size=settings.full_batch)
    data = synthetic_splits(protocol, settings.device, settings.full_steps)
    configs = full_space_configs(settings.full_configs)
    rows, skipped = [], []
    for config in configs:
        if not clock.fits(max((r["seconds"] for r in rows), default=0.0)):
            skipped.append(str(config))
            continue
        rows.append(bf16_steps(config, protocol, data))
        free_memory(settings.device)
    bad = [f"{r['config']} ({r['failure']})" for r in rows if not r["finite"]]
    notes = [f"`search_spaces/{SPACE}.yaml`: {len(configs)} of {len(load_space(SPACE).grid())} configs, macro "
             f"`{protocol.macro}`, batch {protocol.batch_size}, {settings.full_steps} steps each, bf16 autocast "
             f"(forced, also on CPU), protocol `{PROTOCOL}`'s SGD and schedule, synthetic data"]
    targets = [f"Target: no non-finite loss in {settings.full_steps} bf16 steps — "
               + ("met" if not bad and rows else "NOT met" if bad else "nothing ran")
               + f": {sum(r['finite'] for r in rows)} of {len(rows)} finite"
               + (f"; failures: {'; '.join(bad)}" if bad else "")]
    if skipped:
        listed = f"{', '.join(skipped[:5])}{', …' if len(skipped) > 5 else ''}"
        longest = max((r["seconds"] for r in rows), default=0.0)
        targets.append(clock.skipped(f"{len(skipped)} configs ({listed})", longest))
    return Section("full", f"{settings.full_steps} bf16 training steps of every block in `{SPACE}`", notes,
                   pd.DataFrame(rows), targets)


def published_latency_ms() -> dict[str, float]:
    """The PfLayer GPU latencies from ablate's published_results.csv (model name → ms)."""
    text = (resources.files("ablate") / "resources" / "published_results.csv").read_text()
    return {row["model"]: float(row["gpu_latency_ms"]) for row in csv.DictReader(text.splitlines())
            if row["gpu_latency_ms"]}


def latency_section(settings: Settings, clock: Clock) -> Section:
    title = f"Latency and throughput at {settings.latency_size}² vs the published ratios"
    if not clock.fits():
        return Section("latency", title, targets=[clock.skipped("the latency section")])
    size = (3, settings.latency_size, settings.latency_size)
    models = {name: timm.create_model(name, num_classes=1000) for name in LATENCY_MODELS}
    latency: dict[str, list[float]] = {name: [] for name in models}
    throughput: dict[str, list[float]] = {name: [] for name in models}
    macs: dict[str, int] = {}
    for r in range(settings.latency_rounds):
        for name in (list(models) if r % 2 == 0 else list(models)[::-1]):
            costs = measure(models[name], size, device=settings.device, batch_size=settings.latency_batch,
                            repeats=settings.latency_repeats)
            latency[name].append(costs.latency_ms)
            throughput[name].append(costs.throughput)
            macs[name] = costs.macs
    published = published_latency_ms()
    base = "resnet50"
    rows = []
    for name, paper in LATENCY_MODELS.items():
        lat, thr = statistics.median(latency[name]), statistics.median(throughput[name])
        rows.append({"model": name, "MACs (G)": macs[name] / 1e9, "latency bs1 (ms)": lat,
                     f"throughput bs{settings.latency_batch} (img/s)": thr,
                     "latency / R50": lat / statistics.median(latency[base]),
                     "published latency / R50": published[paper] / published[LATENCY_MODELS[base]],
                     "throughput / R50": thr / statistics.median(throughput[base])})
    on_cuda = settings.device.type == "cuda"
    notes = [f"`ablate.costs.measure` on {settings.device.type}: {settings.latency_size}², batch 1 latency and batch "
             f"{settings.latency_batch} throughput, {'fp16 autocast + channels_last' if on_cuda else 'fp32, NCHW'} "
             f"(its defaults on {'CUDA' if on_cuda else 'CPU'}), median of {settings.latency_rounds} interleaved "
             f"rounds of its own median of {settings.latency_repeats} timings",
             "published: PfLayer's GPU latencies (" + " / ".join(f"{published[p]:g}" for p in LATENCY_MODELS.values())
             + " ms, from `ablate/resources/published_results.csv`), a different GPU and software stack: compare "
             "ratios only"]
    return Section("latency", title, notes, pd.DataFrame(rows))


# --- report ---


def packing_section(settings: Settings, clock: Clock) -> Section:
    """N concurrent trainings on one device (``benchmarks/packing.py``), the packing to use, and the projected wall
    time of a default qlblock ablation under the protocol at that packing."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import packing

    from ablate.costs import count_macs
    from ablate.design import balanced_design
    from ablate.models import BASELINE_BY_TIMM_NAME

    protocol = load_protocol(settings.packing_protocol)
    space = load_space("qlblock")
    macro = settings.packing_macro or space.macro_for(protocol.name, protocol.macro)
    measured = BlockConfig.parse(MODELS[0])
    command = packing.worker_command(protocol.name, str(measured), str(settings.device), settings.packing_batches,
                                     settings.packing_passes, settings.packing_batch_size, macro,
                                     None if settings.smoke or not protocol.compile else "inductor",
                                     settings.cpu_threads)
    results = []
    for n in settings.packing_counts:
        if not clock.fits(60.0 + 10.0 * n):
            results.append(packing.PackingResult(n, (), (), "skipped: outside the time budget"))
            continue
        results.append(packing.measure(n, command, timeout=600.0))
    base = results[0].aggregate if results else math.nan
    table = pd.DataFrame([{"N": r.n, "aggregate img/s": r.aggregate, "× N=1": r.aggregate / base,
                           "img/s per process": r.aggregate / r.n, "peak memory per process (MiB)":
                           max(r.peak_mib) if r.peak_mib else math.nan, "total (MiB)": sum(r.peak_mib) or math.nan,
                           "failure": r.error or ""} for r in results])
    notes = [f"{protocol.name}'s model: `{measured}` on macro {macro}, batch "
             f"{settings.packing_batch_size or protocol.batch_size}, {describe_precision(protocol, settings.device)}, "
             f"synthetic uint8 32² images on the device, {settings.packing_passes} timed passes of "
             f"{settings.packing_batches} batches per process after a warm-up; processes released together"]
    best = packing.best_packing(results)
    targets = []
    if best is not None:
        train_images = int(round(50_000 * (1 - protocol.val_fraction)))  # CIFAR-10's training set, less validation
        design = [BlockConfig(**point) for point in balanced_design(space.axes, 12, seed=0)]
        baselines = [BASELINE_BY_TIMM_NAME[t].block for t in space.baselines]
        macs = {str(c): count_macs(build_model(c, macro, 10), (3, 32, 32)) for c in [*design, *baselines, measured]}
        dearest = sorted((str(c) for c in design), key=macs.get)[-3:]  # confirmations: an upper bound
        trainings = [macs[str(c)] for c in design] + [macs[str(b)] for b in baselines] * 4 + \
            [macs[c] for c in dearest] * 3
        wall = packing.project_wall(best.aggregate / best.n, best.n, protocol, train_images, trainings,
                                    macs[str(measured)])
        targets += [f"packing: N = {best.n} processes (`--gpus-per-trial {1 / best.n:g}`): the smallest N within 5 % "
                    f"of the best aggregate ({best.aggregate:.0f} img/s)",
                    f"projected `python run_ablation.py --space qlblock --protocol {protocol.name}` on this device: "
                    f"{wall / 60:.1f} min for its {len(trainings)} trainings ({protocol.epochs} epochs of "
                    f"{train_images} images each; throughput scaled by each block's MACs against `{measured}`; "
                    "the 3 confirmed configs taken as the 3 dearest of the design, an upper bound; evaluation and "
                    "start-up not counted)"]
    return Section("packing", "Trainings packed on one device", notes, table, targets)


def header(settings: Settings, argv: Sequence[str]) -> str:
    if settings.device.type == "cuda":
        device = f"{torch.cuda.get_device_name(settings.device)} (CUDA {torch.version.cuda})"
    else:
        threads = torch.get_num_threads()
        device = f"CPU {platform.processor() or platform.machine()}, {threads} torch thread{'s' * (threads != 1)}"
    kind = ("**CPU smoke run: tiny sizes to exercise the code, not a performance measurement.**" if settings.smoke
            else "Measured in one run; every claim is a ratio of numbers measured side by side in it.")
    return "\n".join([
        "# bench_gpu", "", kind, "",
        f"- device: {device}", f"- torch {torch.__version__}, timm {timm.__version__}, Python {platform.python_version()}",
        f"- date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}", f"- commit: {git_commit()}",
        f"- command: `python {' '.join(argv)}`", "", "",
    ])


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown (no git checkout)"
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"


def write_report(path: Path | None, head: str, sections: dict[str, Section], wanted: Iterable[str],
                 clock: Clock) -> None:
    if path is None:
        return
    body = [sections[k].markdown() if k in sections else f"## {k}\n\nnot run (yet)\n" for k in wanted]
    write_text(path, head + "\n".join(body) + f"\nwall time: {clock.elapsed():.0f} s\n")


def usage_error(message: str) -> None:
    """One line on stderr and exit status 2, as ablate's command line does."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def wanted_sections(text: str) -> list[str]:
    """The requested sections in canonical order; mfu pulls in peak and trainer."""
    names = {s.strip() for s in text.split(",") if s.strip()}
    unknown = names - set(SECTIONS)
    if unknown:
        usage_error(f"unknown section {min(unknown)!r}: choose from {', '.join(SECTIONS)}")
    if "mfu" in names:
        names |= {"peak", "trainer"}
    return [s for s in SECTIONS if s in names]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on any device (CI); not a measurement")
    parser.add_argument("--out", type=Path, default=None, help="write the tables as markdown here")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    parser.add_argument("--budget-s", type=float, default=None, help="wall-time budget; 0 = none (default 290, smoke 0)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds per path")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round")
    parser.add_argument("--models", default=None, help="comma list of block configs for the trainer section")
    parser.add_argument("--compile-models", default=None, help="comma list of block configs to compile")
    parser.add_argument("--compile-backend", default=None, help="torch.compile backend (inductor; smoke: aot_eager)")
    return parser.parse_args(argv)


def config_list(text: str) -> tuple[str, ...]:
    """Comma-separated block configs, each checked (a typo is a one-line error, not a failed row)."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    for name in names:
        try:
            BlockConfig.parse(name)
        except ValueError as err:
            usage_error(str(err))
    return names


def build_settings(args: argparse.Namespace) -> Settings:
    device = torch.device(args.device)
    settings = Settings.smoke_run(device) if args.smoke else Settings.full(device)
    overrides: dict[str, Any] = {}
    if args.budget_s is not None:
        overrides["budget_s"] = args.budget_s
    if args.rounds is not None:
        overrides["rounds"] = args.rounds
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.models is not None:
        overrides["models"] = config_list(args.models)
    if args.compile_models is not None:
        overrides["compile_models"] = config_list(args.compile_models)
    if args.compile_backend is not None:
        overrides["compile_backend"] = args.compile_backend
    return replace(settings, **overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = build_settings(args)
    wanted = wanted_sections(args.sections)
    clock = Clock(settings.budget_s)
    if settings.device.type == "cpu" and settings.cpu_threads:
        torch.set_num_threads(settings.cpu_threads)
    if settings.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as ablate.training.train sets it on CUDA
    head = header(settings, [Path(sys.argv[0]).as_posix(), *(sys.argv[1:] if argv is None else argv)])
    print(head, flush=True)
    sections: dict[str, Section] = {}
    peak, eager, compiled = math.nan, [], []

    def done(section: Section) -> None:
        section.notes.append(f"section wall time {clock.lap():.1f} s")
        sections[section.key] = section
        print(section.text(), "", sep="\n", flush=True)
        write_report(args.out, head, sections, wanted, clock)

    if "peak" in wanted:
        section, peak = peak_section(settings)
        done(section)
    if "trainer" in wanted:
        section, eager = trainer_section(settings, clock)
        done(section)
    if "latency" in wanted:
        done(latency_section(settings, clock))
    if "full" in wanted:
        done(full_section(settings, clock))
    if "packing" in wanted:
        done(packing_section(settings, clock))
    if "compile" in wanted:
        section, compiled = compile_section(settings, clock)
        done(section)
    if "mfu" in wanted:
        done(mfu_section(peak, eager, compiled))
    print(f"wall time: {clock.elapsed():.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
