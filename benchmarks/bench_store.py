"""What filing a model and exporting a run's tables cost per model, at 10, 100 and 1,000 CIFAR-sized models.

Each synthetic model is CIFAR-sized: per-image hits on 5,000 validation and 10,000 test images, a 30-epoch curve,
a full table row. Three costs, each per model, in a fresh SQLite store (``ablate.db`` in a temporary folder):

- ``store filing``: one model filed (``RunLink.file``: the model and the run's use of it, one transaction) into a
  store already holding N-1 — the mean over the last tenth of the N filings;
- ``store export``: the run's four tables written from the store (``export_run``), divided by N;
- ``record filing`` (before the store): one model filed as the run's record did it alone, ``records/<id>.json``
  then every table rewritten (``RunRecord.write``) — at N models; the mean over a few filings (never at 1,000
  unless ``--record-at-1000``: that one rewrite reads a thousand records);
- ``record, as a run files``: the same filings as a run makes them now (``RunRecord.write(now=False)``: the tables
  are rewritten only once 10× the last rewrite's time has passed), ``--stream`` models back to back into a record
  holding N, then the phase's closing rewrite; the whole, divided by the models filed.

Usage:
    python benchmarks/bench_store.py [--sizes 10 100 1000] [--record-at-1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ablate.records import encode_hits  # noqa: E402
from ablate.store import RunLink, SQLStore, export_run  # noqa: E402
from ablate.tune.record import RunRecord  # noqa: E402

VAL, TEST, EPOCHS = 5000, 10000, 30
CONTEXT = {"protocol": {"name": "cifar10", "epochs": EPOCHS}, "macro": "cifar", "split_seed": 0,
           "data": {"dataset": "cifar10", "data_dir": "/data/cifar10", "splits": {"train": 45000, "val": VAL,
                                                                                  "test": TEST}},
           "code": "bench", "plugins": []}


def model(index: int, rng: np.random.Generator) -> dict:
    """One synthetic CIFAR-sized model's outcome (row, curve, per-image hits), distinct by ``index``."""
    config = f"relu-dwconv-w{index}"
    row = {"kind": "candidate", "trial_id": f"ablation-{config}-s0", "name": config, "config": config,
           "config_hash": f"{index:012x}", "network": f"{index:012x}", "nonlinearity": "relu", "spatial": "dwconv",
           "width": float(index), "status": "completed", "reason": "", "epochs": EPOCHS,
           "val_top1": float(rng.uniform(80, 95)), "val_top5": 99.0, "val_loss": 0.3, "test_top1": 90.0,
           "params": 1_000_000 + index, "macs": 5e8, "elementwise_ops": 1e7, "uncounted_ops": 0, "activations": 1e6,
           "train_seconds": 600.0, "seed": 0, "phase": "ablation", "symmetry_gap": 0.1, "symmetric": False,
           "node": "bench"}
    curve = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.0 / e, "val_top1": 80 + e / 3, "val_top5": 99.0,
              "lr": 0.1, "epoch_seconds": 20.0, "images_per_second": 2000.0} for e in range(1, EPOCHS + 1)]
    hits = {"val": encode_hits(rng.random(VAL) < 0.9), "test": encode_hits(rng.random(TEST) < 0.9)}
    return {"row": row, "curves": curve, "predictions": hits}


def store_costs(n: int, folder: Path) -> tuple[float, float]:
    """Seconds per model: filing (the last tenth's mean) and export, for a run of ``n`` models."""
    rng = np.random.default_rng(n)
    outcomes = [model(i, rng) for i in range(n)]
    run = folder / f"run-{n}"
    link = RunLink(SQLStore(f"sqlite:///{folder / f'store-{n}.db'}"), str(run), CONTEXT)
    seconds = []
    for outcome in outcomes:
        start = time.perf_counter()
        link.file(outcome)
        seconds.append(time.perf_counter() - start)
    start = time.perf_counter()
    table = export_run(link.store, run)
    export = (time.perf_counter() - start) / n
    assert len(table) == n
    return statistics.mean(seconds[-max(1, n // 10):]), export


def record_cost(n: int, folder: Path, repeats: int = 3) -> float:
    """Seconds of one filing into a run's record holding ``n`` models, with the tables rewritten after it."""
    rng = np.random.default_rng(n)
    record = RunRecord(folder / f"record-{n}")
    for i in range(n - repeats):
        record.file(model(i, rng))
    record.write()
    seconds = []
    for i in range(n - repeats, n):
        outcome = model(i, rng)
        start = time.perf_counter()
        record.file(outcome)
        record.write()
        seconds.append(time.perf_counter() - start)
    return statistics.mean(seconds)


def streamed_record_cost(n: int, folder: Path, filings: int) -> float:
    """Seconds per model of ``filings`` models filed back to back, as a run files them, into a record holding
    ``n``, the closing rewrite included."""
    rng = np.random.default_rng(n + 1)
    record = RunRecord(folder / f"stream-{n}")
    for i in range(n):
        record.file(model(i, rng))
    record.write()
    outcomes = [model(n + i, rng) for i in range(filings)]
    start = time.perf_counter()
    for outcome in outcomes:
        record.file(outcome)
        record.write(now=False)
    record.write()
    return (time.perf_counter() - start) / filings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--record-at-1000", action="store_true", help="also time the record's filing at 1,000")
    parser.add_argument("--stream", type=int, default=50, help="models filed back to back for the last column")
    args = parser.parse_args(argv)
    print(f"{'models':>7} {'store filing':>14} {'store export':>14} {'record filing':>15} "
          f"{'record, as a run files':>24}   (seconds per model)")
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        for n in args.sizes:
            filing, export = store_costs(n, Path(tmp))
            at_scale = n < 1000 or args.record_at_1000
            record = record_cost(n, Path(tmp)) if at_scale else float("nan")
            streamed = streamed_record_cost(n, Path(tmp), args.stream) if at_scale else float("nan")
            print(f"{n:7d} {filing:14.4f} {export:14.4f} {record:15.4f} {streamed:24.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
