"""Several runs reported as one: ``python run_ablation.py report results/A results/B …``.

Runs of one protocol on one dataset (same recipe, macro, split sizes and reference block) pool their models: every
config keeps every seed any run trained it under, and the report's comparisons form one Holm family over the union.
Two runs of the same split seed that trained the same config under the same training seed trained the same model:
it is counted once. Runs of different split seeds trained on different train/val splits of the same data (the test
split never changes, and verdicts are judged on it): their models of one config are replicates too, with the split's
variation in their scatter, and their seeds are kept apart — a training seed of the n-th split seed is shown as
``n × 1000 + seed``.

Only ablation runs pool: a search run's selection is tied to its own seed's validation split, so two of them do not
add up to one selection.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ablate.core.errors import UsageError
from ablate.core.files import read_json, read_table, write_json
from ablate.core.schema import CURVE_COLUMNS, PREDICTION_COLUMNS, Status
from ablate.results import write_tables

SEED_STRIDE = 1000  # the seeds of the n-th split seed are shown as n × SEED_STRIDE + training seed
# What the runs must share to be one experiment: every recipe field, the macro, the split sizes, the reference
MUST_MATCH = {"protocol": "protocol", "macro": "macro", "data": "data split sizes", "reference": "reference block",
              "design": "design"}


@dataclass(frozen=True)
class PooledRuns:
    """What a pooled report stands on.

    Args:
        folder: Where the pooled tables and report were written.
        runs: Each run's folder name and its completed models.
        models: Models in the pooled table (completed, each once).
        duplicates: Models trained by more than one run (same split seed, config and training seed), counted once.
    """

    folder: Path
    runs: tuple[tuple[str, int], ...]
    models: int
    duplicates: int

    def line(self) -> str:
        runs = ", ".join(f"{name} ({n} models)" for name, n in self.runs)
        twice = f", {self.duplicates} trained by two runs counted once" if self.duplicates else ""
        return f"pooled {len(self.runs)} runs: {runs} → {self.models} models{twice}"


def pool_runs(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> PooledRuns:
    """Write the union of ``run_dirs`` as one run folder (tables and ``run.json``), ready for ``build_report``.

    Args:
        run_dirs: Two or more run folders of the same experiment (see the module docstring).
        out: The pooled folder (default: ``pooled-A+B…`` beside the first run).

    Returns:
        What was pooled.

    Raises:
        UsageError: A folder without a run, runs that differ in what they must share (named, with both values),
            a search run, or a run listed twice.
    """
    folders = [Path(d) for d in run_dirs]
    if len({f.resolve() for f in folders}) < len(folders):
        raise UsageError("a run is listed twice: pass each results/<run> folder once")
    metas = [_meta(f) for f in folders]
    _check_same_experiment(folders, metas)
    split_seeds = sorted({int(m.get("seed", 0)) for m in metas})
    trials, curves, predictions, counts = [], [], [], []
    for folder, meta in zip(folders, metas):
        offset = SEED_STRIDE * split_seeds.index(int(meta.get("seed", 0)))
        table = read_table(folder / "trials.parquet")
        table = table[table["status"] == Status.COMPLETED].copy()
        counts.append((folder.name, len(table)))
        rename = {t: f"{folder.name}/{t}" for t in table["trial_id"]}
        table["trial_id"] = table["trial_id"].map(rename)
        table["seed"] = pd.to_numeric(table["seed"]) + offset
        table["run"] = folder.name
        trials.append(table)
        for name, frames, columns in (("curves", curves, CURVE_COLUMNS), ("predictions", predictions,
                                                                             PREDICTION_COLUMNS)):
            path = folder / f"{name}.parquet"
            part = read_table(path) if path.is_file() else pd.DataFrame(columns=columns)
            part = part[part["trial_id"].isin(rename)].copy()
            part["trial_id"] = part["trial_id"].map(rename)
            if "seed" in part:
                part["seed"] = pd.to_numeric(part["seed"]) + offset
            frames.append(part)
    pooled = pd.concat(trials, ignore_index=True)
    keep = ~pooled.duplicated(["network", "seed"] if pooled["network"].notna().all() else ["config", "seed"])
    kept_ids = set(pooled.loc[keep, "trial_id"])
    folder = Path(out) if out else folders[0].resolve().parent / ("pooled-" + "+".join(f.name for f in folders))
    folder.mkdir(parents=True, exist_ok=True)
    write_tables(folder, pooled[keep].to_dict("records"), _only(curves, kept_ids),
                 _only(predictions, kept_ids))
    result = PooledRuns(folder, tuple(counts), int(keep.sum()), int((~keep).sum()))
    write_json(folder / "run.json", _pooled_meta(metas, folders, result, split_seeds))
    return result


def study_folders(study: str, store: str | None = None) -> list[Path]:
    """The folders of the runs filed under ``study`` (``run --study NAME``) in the store, the oldest first.

    Args:
        study: The study's name.
        store: The store (a SQLite file or a URL); None: ``results/ablate.db``.

    Raises:
        UsageError: No store there, no run of that study in it (the studies it holds are named), or a run's
            folder is gone.
    """
    from ablate.store import open_store

    held = open_store(store, create=False)
    runs = held.study_runs(study)
    if not runs:
        studies = sorted({str(run["meta"].get("study")) for run in held.runs() if run["meta"].get("study")})
        held_line = f"it holds {', '.join(studies)}" if studies else "it holds none (run --study NAME files a run)"
        raise UsageError(f"no run of study {study!r} in the store {held.url}: {held_line}")
    for run in runs:
        if not Path(run["run"]).is_dir():
            raise UsageError(f"run {run['name']} of study {study!r} is gone from {run['run']}: restore the folder, "
                             "or report the other runs by their folders")
    return [Path(run["run"]) for run in runs]


def _meta(folder: Path) -> dict[str, Any]:
    if not (folder / "trials.parquet").is_file():
        raise UsageError(f"{folder} holds no run (no trials.parquet): pass results/<run> folders written by runs")
    meta = read_json(folder / "run.json") if (folder / "run.json").is_file() else None
    if not isinstance(meta, dict):
        raise UsageError(f"{folder}/run.json is missing: a pooled report needs each run's protocol and data to "
                         "check they are one experiment")
    if meta.get("design") != "ablation":
        raise UsageError(f"{folder.name} is a {meta.get('design')!r} run: only ablation runs pool (a search run's "
                         "selection belongs to its own seed); report it on its own")
    return meta


def _check_same_experiment(folders: list[Path], metas: list[dict[str, Any]]) -> None:
    first = metas[0]
    for folder, meta in zip(folders[1:], metas[1:]):
        for key, what in MUST_MATCH.items():
            if _comparable(meta.get(key)) != _comparable(first.get(key)):
                raise UsageError(f"{folders[0].name} and {folder.name} differ in their {what} "
                                 f"({_short(first.get(key))} vs {_short(meta.get(key))}): only runs of one "
                                 "experiment pool; report them apart, or compare them (run_ablation.py compare)")


def _comparable(value: Any) -> Any:
    """A protocol without its descriptive text (which a later version may reword)."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in ("description", "expected", "source")}
    return value


def _short(value: Any, limit: int = 80) -> str:
    text = str(_comparable(value))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _only(frames: list[pd.DataFrame], trial_ids: set[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    return frame[frame["trial_id"].isin(trial_ids)].reset_index(drop=True)


def _pooled_meta(metas: list[dict[str, Any]], folders: list[Path], result: PooledRuns,
                 split_seeds: list[int]) -> dict[str, Any]:
    """The first run's description of the experiment, with what was pooled and the union of seeds."""
    meta = dict(metas[0])
    meta.update({
        "pooled": {"runs": [str(f) for f in folders], "models": result.models, "duplicates": result.duplicates,
                   "split_seeds": split_seeds, "seed_stride": SEED_STRIDE,
                   "seeds": [int(m.get("seeds") or 0) for m in metas]},
        "run_dir": str(result.folder),
        "command": " | ".join(str(m.get("command", "")) for m in metas),
        "wall_seconds": sum(float(m.get("wall_seconds") or 0) for m in metas),
        "started": min(str(m.get("started", "")) for m in metas),
        "finished": max(str(m.get("finished", "")) for m in metas),
        "plan": None,
    })
    return meta
