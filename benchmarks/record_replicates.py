"""Record real replicated models: several block configs, each trained under many training seeds on one protocol's
fixed splits, with every model's per-image hits on val and test.

The file it writes (``ablate/resources/records/<protocol>.json``: the recipe, macro and split sizes it was recorded
under, and each model's hits) is the evidence the seed-variance tests split and compare
(``tests/test_seed_variance.py``) — the statistics must be calibrated on real models, whose seed-to-seed spread
differs from config to config, not only on simulated ones — and the noise a plan starts from on that protocol before
any run of the user's own exists (``ablate.planning``).

    python benchmarks/record_replicates.py --seeds 12 --workers 2
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
    from ablate.records import encode_hits
    from ablate.training import train

    torch.set_num_threads(1)
    data = load_protocol_data(protocol, device="cpu", seed=0)  # the run seed fixes the splits; the seed trains
    started = time.perf_counter()
    result = train(config, protocol, seed=seed, data=data, device="cpu")
    if result.status != "completed":
        raise RuntimeError(f"{config} seed {seed}: {result.status} ({result.reason})")
    return config, seed, {k: encode_hits(v) for k, v in result.correct.items()}, result.test_top1, \
        time.perf_counter() - started


def _provenance(protocol_name: str) -> dict:
    """What the models were trained under: a plan uses the record only for the same recipe, macro and splits."""
    import platform

    import torch

    import ablate
    from ablate.data import load_protocol_data
    from ablate.planning.history import recipe
    from ablate.protocols import load_protocol

    protocol = load_protocol(protocol_name)
    data = load_protocol_data(protocol, device="cpu", seed=0)
    return {"recorded": f"{time.strftime('%Y-%m-%d')} by benchmarks/record_replicates.py (ablate {ablate.__version__}, "
                        f"torch {torch.__version__}, {platform.machine()} CPU)",
            "recipe": recipe(protocol), "macro": protocol.macro, "split_seed": 0,
            "data": {split: data.size(split) for split in ("train", "val", "test")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--protocol", default="digits")
    parser.add_argument("--seeds", type=int, default=12, help="training seeds 1 … N per config")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, help="default: ablate/resources/records/<protocol>.json")
    args = parser.parse_args(argv)
    out = args.out or (Path(__file__).resolve().parent.parent / "ablate" / "resources" / "records"
                       / f"{args.protocol}.json")
    jobs = [(c, args.protocol, s) for c in args.configs for s in range(1, args.seeds + 1)]
    hits: dict[str, dict[str, dict[str, str]]] = {c: {} for c in args.configs}
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        for done, (config, seed, correct, top1, seconds) in enumerate(pool.map(_train, *zip(*jobs)), 1):
            hits[config][str(seed)] = correct
            print(f"[{done}/{len(jobs)}] {config} seed {seed}: test top-1 {top1:.2f} % ({seconds:.0f} s)", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**_provenance(args.protocol), "models": hits}, indent=1) + "\n")
    print(f"wrote {out}: {len(jobs)} models in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
