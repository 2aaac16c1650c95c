"""What earlier models of a protocol say before anything new is trained: the runs in the results folder that trained
on the same recipe, macro and data, and the record shipped for a protocol (``ablate/resources/records/``)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ablate.core.errors import UsageError
from ablate.core.files import read_json, read_table
from ablate.core.schema import Kind, Phase, Status
from ablate.protocols import Protocol

PROSE = ("description", "expected", "source")


def recipe(protocol: Protocol) -> dict[str, Any]:
    """The protocol's fields that decide what a model learns (its prose left out)."""
    return {k: v for k, v in protocol.as_dict().items() if k not in PROSE}


@dataclass(frozen=True)
class History:
    """Earlier models of one recipe, macro and data: their per-image predictions (one frame per run), the seconds
    each config's trainings took, and each run's fixed seconds (wall time less its trainings' makespan)."""

    predictions: list[pd.DataFrame]
    seconds: dict[str, float]
    fixed: list[float]
    sources: list[str]

    @property
    def source(self) -> str:
        return "; ".join(self.sources)


def _same(meta: dict, protocol: Protocol, macro: str, splits: dict[str, int]) -> bool:
    saved = {k: v for k, v in (meta.get("protocol") or {}).items() if k not in PROSE}
    data = {k: meta.get("data", {}).get(k) for k in splits} if isinstance(meta.get("data"), dict) else {}
    return saved == recipe(protocol) and meta.get("macro") == macro and data == dict(splits)


def earlier_runs(results_dir: Path, protocol: Protocol, macro: str, splits: dict[str, int],
                 exclude: Path | None = None) -> History:
    """The finished runs under ``results_dir`` (pilots included) that trained on this recipe, macro and data."""
    predictions, seconds, fixed, sources = [], {}, [], []
    for meta_path in sorted(results_dir.glob("*/run.json")):
        run_dir = meta_path.parent
        if exclude is not None and run_dir.resolve() == exclude.resolve():
            continue
        try:
            meta = read_json(meta_path)
            if not meta.get("finished") or not _same(meta, protocol, macro, splits):
                continue
            trials = read_table(run_dir / "trials.parquet")
            preds = read_table(run_dir / "predictions.parquet")
        except (UsageError, OSError):
            continue  # a damaged or partial run says nothing here
        done = trials[trials["status"] == Status.COMPLETED]
        for config, group in done.groupby("config"):
            seconds.setdefault(str(config), float(pd.to_numeric(group["train_seconds"]).median()))
        if isinstance(meta.get("wall_seconds"), (int, float)) and meta.get("workers"):
            from ablate.planning.timing import Schedule

            schedule = Schedule(int(meta["workers"]))
            for value in pd.to_numeric(done["train_seconds"]).fillna(0):
                schedule.add(float(value))
            fixed.append(max(float(meta["wall_seconds"]) - schedule.makespan, 0.0))
        predictions.append(preds)
        sources.append(f"{len(done)} models of {run_dir.name}")
    return History(predictions, seconds, fixed, sources)


def shipped_record(protocol: Protocol, macro: str, splits: dict[str, int]) -> tuple[pd.DataFrame, str] | None:
    """The models recorded for this protocol with the package (``benchmarks/record_replicates.py``), as a
    predictions frame (each model a fresh seed of its config), when they match this recipe, macro and data."""
    source = resources.files("ablate") / "resources" / "records" / f"{protocol.name}.json"
    if not source.is_file():
        return None
    record = json.loads(source.read_text(encoding="utf-8"))
    if record.get("recipe") != recipe(protocol) or record.get("macro") != macro or \
            {k: record.get("data", {}).get(k) for k in splits} != dict(splits):
        return None
    parts = []
    for config, seeds in record["models"].items():
        for seed, splits_hits in seeds.items():
            for split, hits in splits_hits.items():
                correct = np.frombuffer(hits.encode(), np.uint8) == ord("1")
                parts.append(pd.DataFrame({"trial_id": f"{config}-s{seed}", "kind": Kind.CANDIDATE, "name": config,
                                           "config": config, "seed": int(seed), "phase": Phase.CONFIRM, "split": split,
                                           "image": np.arange(len(correct)), "correct": correct}))
    models = sum(len(s) for s in record["models"].values())
    return pd.concat(parts, ignore_index=True), f"{models} {protocol.name} models recorded {record['recorded']}"


def median_fixed(history: History) -> float:
    return float(np.median(history.fixed)) if history.fixed else math.nan
