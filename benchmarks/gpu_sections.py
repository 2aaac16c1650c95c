"""bench_gpu's sections: matmul peak, trainer vs reference (eager and compiled), MFU, bf16 steps of every block,
latency at 224², and trainings packed on one device."""

from __future__ import annotations

import csv
import math
import statistics
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import timm
import torch
from gpu_common import (
    DISPLAY,
    DTYPE_NAMES,
    LATENCY_MODELS,
    MODELS,
    PROTOCOL,
    SEED,
    SPACE,
    TARGET_RATIO,
    Clock,
    Section,
    Settings,
    failure,
    free_memory,
    matmul_peak,
)
from gpu_paths import ModelRates, describe_precision, measure_model, synthetic_splits, trainer_protocol
from torch import nn

from ablate.costs import measure
from ablate.data import DatasetSplits
from ablate.models import BlockConfig, build_model
from ablate.protocols import Protocol, load_protocol
from ablate.space import load_space
from ablate.training import Precision, choose_precision, make_run, make_step, train_epoch


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
    return (f"Target {what}: trainer ≥ {TARGET_RATIO}× the reference loop's img/s per model — "
            f"{verdict} ({len(ratios)} measured)")


def setting_notes(settings: Settings, protocol: Protocol, data: DatasetSplits) -> list[str]:
    return [f"protocol `{PROTOCOL}`'s setting: macro `{protocol.macro}`, 32², batch {protocol.batch_size}, "
            f"{describe_precision(protocol, data.device)}, SGD nesterov lr {protocol.lr:g} "
            f"wd {protocol.weight_decay:g} (the trainer adds its "
            f"per-step cosine LambdaLR, on-device crop+flip+normalize and the loss sum)",
            f"{settings.steps} timed steps per round, {settings.rounds} rounds per path interleaved ABBA, median; "
            f"first step and one warm-up epoch excluded; synthetic uint8 CIFAR-shaped data through "
            f"`ablate.data.splits.tensor_splits`"]


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
                      pd.DataFrame(rows),
                      [ratio_target(ratios, "(compiled)"), f"compile gain per model: {gains or '—'}", *skipped])
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


def packing_section(settings: Settings, clock: Clock) -> Section:
    """N concurrent trainings on one device (``benchmarks/packing.py``), the packing to use, and the projected wall
    time of a default qlblock ablation under the protocol at that packing."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import packing

    from ablate.costs import count_macs
    from ablate.models import BASELINE_BY_TIMM_NAME
    from ablate.space.design import balanced_design

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
