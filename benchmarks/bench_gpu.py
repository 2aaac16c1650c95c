"""The GPU path, measured: trainer vs a plain loop, torch.compile, MFU, bf16 stability of every block, latency,
trainings packed on one GPU. This file is the command line and the report; the parts live beside it:
``gpu_common.py`` (settings, sections, time budget, timing), ``gpu_paths.py`` (synthetic data, the trainer and
reference paths), ``gpu_sections.py`` (each section) and ``packing.py`` (the packing workers).

One script, sized for ≤ 5 minutes on one H100-class GPU (``--budget-s``, default 270, guards it: an item starts
only if it should end inside the budget; what does not fit is listed as skipped, never guessed). It prints each
table as it is measured and rewrites ``--out`` (markdown) after every section, so a run cut short still leaves the
sections it finished. Every claim is a ratio measured side by side
in this run; the only outside numbers are the published PfLayer latencies, read from ablate's
``resources/published_results.csv`` and shown in their own column.

Sections:
  peak     — bf16 matmul peak of this device (a big ``torch.mm`` timed), the denominator of MFU;
  trainer  — ablate's trainer path (``make_run`` / ``make_step`` / ``train_epoch`` over a ``TensorSplit`` built by
             ``ablate.data.splits.tensor_splits`` from synthetic uint8 CIFAR-shaped images: the real crop/flip/normalize
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
import math
import platform
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import timm
import torch

from ablate.core.files import write_text
from ablate.models import BlockConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules, whether run or loaded by path
from gpu_common import SECTIONS, Clock, Section, Settings  # noqa: E402
from gpu_sections import (  # noqa: E402
    compile_section,
    full_section,
    latency_section,
    mfu_section,
    packing_section,
    peak_section,
    trainer_section,
)


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
        f"- device: {device}",
        f"- torch {torch.__version__}, timm {timm.__version__}, Python {platform.python_version()}",
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
    parser.add_argument("--budget-s", type=float, default=None,
                        help="wall-time budget; 0 = none (default 290, smoke 0)")
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
