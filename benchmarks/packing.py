"""How many trainings one GPU holds: N concurrent training processes of one protocol's model, side by side.

Each of N worker processes (this file run with ``--worker``) builds ablate's trainer path (``make_run`` /
``make_step`` / ``train_epoch``, as ``ablate.training.train`` drives it, with the protocol's precision, memory format
and, where asked, ``torch.compile``) over synthetic CIFAR-shaped uint8 images held on the device, warms up, says it
is ready, and waits; once all N are ready the parent releases them together, each trains the same number of
passes, and reports its images/s and peak memory. Aggregate throughput is the sum. The smallest N whose aggregate is
within 5 % of the best is the packing a GPU run should use: ``--gpus-per-trial 1/N``.

The same measurements project the wall time of a default ablation under the protocol (:func:`project_wall`).

Usage (the bench calls it): ``python benchmarks/bench_gpu.py --sections packing``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

HERE = Path(__file__).resolve().parent
READY, GO = "ready", "go"
GAIN = 1.05  # a larger N must raise the aggregate by at least 5 % to be worth it


@dataclass(frozen=True)
class PackingResult:
    """One N: each worker's images/s and peak memory (MiB), or the failure that stopped it."""

    n: int
    rates: tuple[float, ...]
    peak_mib: tuple[float, ...]
    error: str = ""

    @property
    def aggregate(self) -> float:
        return sum(self.rates) if self.rates and not self.error else math.nan


def worker_command(protocol: str, config: str, device: str, batches: int, passes: int, batch_size: int | None,
                   macro: str | None, compile_backend: str | None, threads: int | None) -> list[str]:
    cmd = [sys.executable, str(HERE / "packing.py"), "--worker", "--protocol", protocol, "--config", config,
           "--device", device, "--batches", str(batches), "--passes", str(passes)]
    for flag, value in (("--batch-size", batch_size), ("--macro", macro), ("--compile-backend", compile_backend),
                        ("--threads", threads)):
        if value is not None:
            cmd += [flag, str(value)]
    return cmd


def measure(n: int, command: list[str], timeout: float) -> PackingResult:
    """Start ``n`` workers, release them together once all are warm, and collect what each measured."""
    procs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=HERE.parent) for _ in range(n)]
    deadline = time.monotonic() + timeout
    try:
        for proc in procs:  # each prints READY after its warm-up (and compilation)
            line = proc.stdout.readline().strip()
            if line != READY:
                raise RuntimeError(_failure(proc, line))
        for proc in procs:
            proc.stdin.write(GO + "\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            if proc.returncode != 0:
                raise RuntimeError(_failure(proc, out, err))
            results.append(json.loads(out.strip().splitlines()[-1]))
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as err:
        for proc in procs:
            proc.kill()
            proc.wait()
        return PackingResult(n, (), (), str(err).splitlines()[0] if str(err) else type(err).__name__)
    return PackingResult(n, tuple(r["images_per_second"] for r in results), tuple(r["peak_mib"] for r in results))


def _failure(proc: subprocess.Popen, out: str = "", err: str | None = None) -> str:
    if err is None:
        proc.kill()
        _, err = proc.communicate()
    lines = [ln for ln in (err or out or "").splitlines() if ln.strip()]
    return f"worker failed: {lines[-1] if lines else 'no output'}"


def best_packing(results: Sequence[PackingResult]) -> PackingResult | None:
    """The smallest N whose aggregate is within 5 % of the highest measured (more processes cost memory)."""
    ok = [r for r in results if math.isfinite(r.aggregate)]
    if not ok:
        return None
    top = max(r.aggregate for r in ok)
    return min((r for r in ok if r.aggregate * GAIN >= top), key=lambda r: r.n)


def project_wall(per_process_rate: float, n: int, protocol, train_images: int, macs: Sequence[float],
                 reference_macs: float) -> float:
    """Projected seconds for the trainings of a run, ``n`` at a time, each at the measured per-process rate scaled
    by its MACs against the measured model's (throughput taken as ∝ 1/MACs; evaluation passes not counted).

    Args:
        per_process_rate: Images/s of one of ``n`` concurrent workers on the measured model.
        n: Trainings that run at once.
        protocol: The protocol (its ``epochs``).
        train_images: Training images per epoch.
        macs: MACs of every training of the run (one entry per model and seed).
        reference_macs: MACs of the measured model.
    """
    seconds = [protocol.epochs * train_images * (m / reference_macs) / per_process_rate for m in macs]
    return sum(seconds) / n


def _worker(args: argparse.Namespace) -> int:
    import torch

    sys.path.insert(0, str(HERE))
    from gpu_paths import TrainerPath, synthetic_splits  # noqa: E402  (the bench's own synthetic data and path)

    from ablate.models import BlockConfig
    from ablate.protocols import load_protocol

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    overrides = {k: v for k, v in (("batch_size", args.batch_size), ("macro", args.macro)) if v is not None}
    protocol = load_protocol(args.protocol).with_overrides(**overrides)
    data, first = synthetic_splits(protocol, device, args.batches), synthetic_splits(protocol, device, 1, seed=1)
    path = TrainerPath.build(BlockConfig.parse(args.config), protocol, data, first, args.compile_backend)
    path.first_step()
    path.epoch()  # warm: kernels chosen, allocator settled
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    print(READY, flush=True)
    if sys.stdin.readline().strip() != GO:
        return 1
    start, seen = time.perf_counter(), 0
    for _ in range(args.passes):
        seen += path.epoch()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2 ** 20
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"images_per_second": seen / (time.perf_counter() - start), "peak_mib": peak}), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one packing worker (started by bench_gpu.py --sections packing)")
    parser.add_argument("--worker", action="store_true", required=True)
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--batches", type=int, required=True)
    parser.add_argument("--passes", type=int, required=True)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--macro")
    parser.add_argument("--compile-backend")
    parser.add_argument("--threads", type=int)
    return _worker(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
