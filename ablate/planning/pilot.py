"""A short pilot: a few configs under a few seeds, trained here when no earlier model of a protocol exists, kept as a
run folder (``results/pilot-<protocol>-<macro>``) so that every later plan and run of that protocol starts from it."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from ablate.core.files import write_json
from ablate.core.schema import Kind, Phase, Status
from ablate.models import BlockConfig
from ablate.protocols import Protocol

PILOT_SEEDS = 3


def _train(config: str, protocol: Protocol, data_dir: str | None, seed: int) -> dict:
    import torch

    from ablate.data import load_protocol_data
    from ablate.records import encode_hits
    from ablate.training import train

    torch.set_num_threads(1)
    data = load_protocol_data(protocol, data_dir=data_dir, device="cpu", seed=0)
    result = train(config, protocol, seed=seed, data=data, device="cpu")
    return {"config": config, "seed": seed, "status": result.status, "train_seconds": result.train_seconds,
            "test_top1": result.test_top1, "hits": {k: encode_hits(v) for k, v in result.correct.items()}}


def run_pilot(configs: list[BlockConfig], protocol: Protocol, macro: str, splits: dict[str, int], results_dir: Path,
              data_dir: str | None = None, workers: int = 1, seeds: int = PILOT_SEEDS) -> Path:
    """Train ``configs`` under ``seeds`` training seeds each (on the split of seed 0) and write them as a finished
    run folder that :func:`ablate.planning.history.earlier_runs` reads.

    Returns:
        The pilot's folder.
    """
    from ablate.planning.history import recipe
    from ablate.results import prediction_frame, trials_frame

    saved = {**recipe(protocol), "name": protocol.name}  # the recipe as a run's run.json keeps it (its own macro)
    protocol = protocol.with_overrides(macro=macro)
    folder = results_dir / f"pilot-{protocol.name}-{macro}"
    jobs = [(str(c), protocol, data_dir, s) for c in configs for s in range(1, seeds + 1)]
    print(f"[ablate] pilot: {len(configs)} configs × {seeds} seeds on {protocol.name} ({len(jobs)} trainings, "
          f"{workers} at once) to measure this protocol's noise …", flush=True)
    started = time.time()
    # spawned, not forked: a fork of a process that has run autograd (a notebook that trained a model, a test
    # session) fails in its first backward pass ("Unable to handle autograd's threading … fork")
    with ProcessPoolExecutor(max(1, workers), mp_context=multiprocessing.get_context("spawn")) as pool:
        outcomes = list(pool.map(_train, *zip(*jobs)))
    rows = [{"kind": Kind.CANDIDATE, "trial_id": f"pilot-{o['config']}-s{o['seed']}", "name": o["config"],
             "config": o["config"], "status": o["status"], "train_seconds": o["train_seconds"],
             "test_top1": o["test_top1"], "seed": o["seed"], "phase": Phase.CONFIRM} for o in outcomes]
    folder.mkdir(parents=True, exist_ok=True)
    trials_frame(rows).to_parquet(folder / "trials.parquet", index=False)
    pd.concat([prediction_frame(o["hits"], row) for o, row in zip(outcomes, rows) if o["status"] == Status.COMPLETED],
              ignore_index=True).to_parquet(folder / "predictions.parquet", index=False)
    write_json(folder / "run.json", {"protocol": saved, "macro": macro,
                                     "data": splits, "design": "pilot", "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                                     "wall_seconds": time.time() - started, "workers": workers})
    return folder
