"""Record real replicated models: several block configs, each trained under many training seeds on one protocol's
fixed splits, with every model's per-image hits on val and test.

The file it writes (``tests/data/digits_replicates.json``) is the evidence the seed-variance tests split and compare
(``tests/test_seed_variance.py``): the statistics must be calibrated on real models, whose seed-to-seed spread differs
from config to config, not only on simulated ones.

    python benchmarks/record_replicates.py --seeds 12 --workers 2 --out tests/data/digits_replicates.json
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

CONFIGS = ("relu-conv3x3-w0.25", "relu-maxpool-w0.25", "relu-hybrid-w0.25", "multiply-dwconv-w2",
           "hardball-avgpool-w4", "relu-twist-w1")


def _train(config: str, protocol: str, seed: int) -> tuple[str, int, dict[str, str], float, float]:
    import torch

    from ablate.data import load_protocol_data
    from ablate.results import encode_hits
    from ablate.training import train

    torch.set_num_threads(1)
    data = load_protocol_data(protocol, device="cpu", seed=0)  # the run seed fixes the splits; the seed trains
    started = time.perf_counter()
    result = train(config, protocol, seed=seed, data=data, device="cpu")
    if result.status != "completed":
        raise RuntimeError(f"{config} seed {seed}: {result.status} ({result.reason})")
    return config, seed, {k: encode_hits(v) for k, v in result.correct.items()}, result.test_top1, \
        time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--protocol", default="digits")
    parser.add_argument("--seeds", type=int, default=12, help="training seeds 1 … N per config")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("tests/data/digits_replicates.json"))
    args = parser.parse_args(argv)
    jobs = [(c, args.protocol, s) for c in args.configs for s in range(1, args.seeds + 1)]
    hits: dict[str, dict[str, dict[str, str]]] = {c: {} for c in args.configs}
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        for done, (config, seed, correct, top1, seconds) in enumerate(pool.map(_train, *zip(*jobs)), 1):
            hits[config][str(seed)] = correct
            print(f"[{done}/{len(jobs)}] {config} seed {seed}: test top-1 {top1:.2f} % ({seconds:.0f} s)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"protocol": args.protocol, "split_seed": 0, "models": hits}, indent=1) + "\n")
    print(f"wrote {args.out}: {len(jobs)} models in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
