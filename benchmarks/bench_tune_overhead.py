"""What does the orchestration cost? The same N blocks trained (a) one after another by the bare trainer and
(b) through the full path — Optuna (grid sampler) on Ray Tune with per-epoch checkpoints, the results table
and the side-by-side timing — at the same concurrency (1). The last line is the ratio (b)/(a).

    python benchmarks/bench_tune_overhead.py [--configs relu-dwconv-w2,multiply-dwconv-w2] [--epochs 6]

The defaults (six blocks, the digits protocol at 6 epochs instead of 3) make each candidate train for ~30 s on
one CPU thread, the size the target is stated for; Ray's fixed start-up (~13 s here) weighs more on shorter ones.
Ray's start-up is inside (b)'s wall time, as a user pays it. Baselines are switched off in (b) (``baselines: []``)
so that both paths train exactly the same blocks. Target: ratio ≤ 1.15 for candidates of ~30 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from ablate.core.errors import UsageError
from ablate.core.files import write_text
from ablate.core.schema import AXIS_COLUMNS
from ablate.data import load_protocol_data
from ablate.models import BlockConfig
from ablate.protocols import load_protocol
from ablate.space import load_space
from ablate.training import train


def space_file(configs: list[BlockConfig], folder: Path) -> Path:
    """A space whose grid is exactly these blocks (they must form the full product of the values they take)."""
    axes = {axis: sorted({getattr(c, axis) for c in configs}, key=str) for axis in AXIS_COLUMNS}
    path = folder / "bench.yaml"
    lines = ["name: bench", "axes:"]
    lines += [f"  {axis}:\n    choices: [{', '.join(map(str, values))}]" for axis, values in axes.items()]
    lines += ["macro: cifar", "baselines: []"]
    write_text(path, "\n".join(lines) + "\n")
    return path


def bare(configs: list[BlockConfig], protocol, seed: int) -> float:
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = load_protocol_data(protocol, device="cpu", seed=seed)
    for config in configs:
        result = train(config, protocol, data=data, seed=seed)
        print(f"  bare  {config}: {result.status}, val top-1 {result.val_top1:.1f}%, {result.train_seconds:.1f} s",
              flush=True)
    return time.perf_counter() - start


def orchestrated(space_path: Path, trials: int, protocol, seed: int, folder: Path) -> float:
    from ablate.tune import RunSettings, run_ablation

    start = time.perf_counter()
    settings = RunSettings(space=load_space(space_path), protocol=protocol, run_dir=folder / "results" / "bench",
                           trials=trials, seed=seed, design="grid", sampler="grid", scheduler="none", max_concurrent=1,
                           dashboard=False, confirm=0)
    outcome = run_ablation(settings)
    wall = time.perf_counter() - start
    for _, row in outcome.table.iterrows():
        print(f"  tuned {row['config']}: {row['status']}, val top-1 {row['val_top1']:.1f}%, "
              f"{row['train_seconds']:.1f} s", flush=True)
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="relu-dwconv-w2,multiply-dwconv-w2,hardball-dwconv-w2,"
                                                "relu-avgpool-w2,multiply-avgpool-w2,hardball-avgpool-w2")
    parser.add_argument("--protocol", default="digits")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per candidate (default 6: ~30 s each on digits)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        configs = [BlockConfig.parse(c) for c in args.configs.split(",")]
    except ValueError as err:
        print(f"error: --configs: {err}", file=sys.stderr)
        return 2
    try:  # the protocol validates its own fields (epochs ≥ 1 among them) and names what is wrong
        protocol = load_protocol(args.protocol).with_overrides(epochs=args.epochs)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = space_file(configs, folder)
        if load_space(path).size != len(configs):
            print("error: the configs must form a full grid over the axes they vary, "
                  "e.g. relu-dwconv-w2,multiply-dwconv-w2", file=sys.stderr)
            return 2
        print(f"{len(configs)} blocks, protocol {protocol.name} ({protocol.epochs} epochs), "
              "one trial at a time, 1 CPU thread each")
        tuned = orchestrated(path, len(configs), protocol, args.seed, folder)
        plain = bare(configs, protocol, args.seed)
    print(f"(a) bare trainer, one after another: {plain:.1f} s ({plain / len(configs):.1f} s per candidate)")
    print(f"(b) Optuna + Ray Tune, full path:    {tuned:.1f} s (Ray start-up included)")
    print(f"ratio (b)/(a): {tuned / plain:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
