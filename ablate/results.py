"""The results table of a run: ``results/<run>/trials.parquet`` (+ ``.csv``), ``curves.parquet``,
``predictions.parquet``, ``run.json``, and the run's analysis saved beside them (``summary.parquet`` + ``.csv``,
``effects.parquet``, ``verdicts.parquet``: :mod:`ablate.analysis.pipeline`).

One row per trained model (candidate or baseline, per training seed), with the columns of docs/ARCHITECTURE.md;
the summary has one row per config (:func:`ablate.analysis.summarize`). ``load(run)`` gives the trials back,
``load(run, summary=True)`` the summary (analysed again first if the tables changed since it was saved).
"""

from __future__ import annotations

import math
import os
import platform
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ablate.core.errors import UsageError
from ablate.core.files import read_json, read_table, write_atomic, write_json
from ablate.core.schema import (
    AXIS_COLUMNS,
    CURVE_COLUMNS,
    NUMERIC_COLUMNS,
    PREDICTION_COLUMNS,
    REFERENCE_BASELINE,
    TEXT_COLUMNS,
    TRIAL_COLUMNS,
    Kind,
    Status,
    completed,
)

RESULTS_ENV = "ABLATE_RESULTS_DIR"  # where run folders go (default: results/ in the working directory)


def results_dir() -> Path:
    """The folder run names resolve under: ``$ABLATE_RESULTS_DIR``, else ``results``, read at each call."""
    return Path(os.environ.get(RESULTS_ENV) or "results")


def run_path(run: str | os.PathLike) -> Path:
    """A run given by name (a folder of ``results/``) or by path."""
    path = Path(run)
    return path if path.is_dir() or path.parent != Path(".") else results_dir() / path


def prediction_frame(correct: dict[str, Any], row: dict[str, Any]) -> pd.DataFrame:
    """One trained model's per-image evidence (split → hits, as an array or :func:`~ablate.records.encode_hits`
    text) as rows of ``predictions.parquet``, labelled with the model's row (trial id, name, config, seed, phase)."""
    parts = []
    for split, hits in correct.items():
        values = np.frombuffer(hits.encode(), dtype=np.uint8) == ord("1") if isinstance(hits, str) \
            else np.asarray(hits, dtype=bool)
        parts.append(pd.DataFrame({"split": split, "image": np.arange(len(values), dtype=np.int32),
                                   "correct": values}))
    if not parts:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    frame = pd.concat(parts, ignore_index=True)
    for column in ("trial_id", "kind", "name", "config", "network", "seed", "phase"):
        frame[column] = row.get(column)
    return frame[PREDICTION_COLUMNS]


def trials_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows → the table: schema columns first (extra axes after), Δtop-1 against the ResNet50 baseline.

    ``delta_top1`` pairs by training seed: a row's val top-1 minus the ResNet50 row of the same ``seed`` (rows of
    equal seed share the data split); NaN when that seed's ResNet50 has not completed (yet).
    """
    frame = pd.DataFrame(list(rows))
    for column in TRIAL_COLUMNS:
        if column not in frame:
            frame[column] = math.nan
    reference = frame[(frame["kind"] == Kind.BASELINE) & (frame["name"] == REFERENCE_BASELINE)
                      & (frame["status"] == Status.COMPLETED)]
    base_by_seed = reference.groupby(reference["seed"].fillna(-1))["val_top1"].mean()
    base_top1 = frame["seed"].fillna(-1).map(base_by_seed).astype(float)
    frame["delta_top1"] = (frame["val_top1"] - base_top1).where(frame["status"] == Status.COMPLETED)
    frame["reason"] = frame["reason"].fillna("").astype(str)
    extra = [c for c in frame.columns if c not in TRIAL_COLUMNS]
    return frame[TRIAL_COLUMNS + extra]


def write_tables(run_dir: Path, rows: Iterable[dict[str, Any]], curves: pd.DataFrame,
                 predictions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Write trials.parquet/.csv, curves.parquet and predictions.parquet, each atomically; return the trials.

    Called again and again while a run is in progress: every file is replaced whole (write, then rename), so a
    reader never sees half a table. The analysis is not computed here, once per filing, but once the tables have
    changed and someone reads it (:func:`analysis_of`).
    """
    table = trials_frame(rows)
    predictions = pd.DataFrame(columns=PREDICTION_COLUMNS) if predictions is None else predictions
    predictions = predictions[predictions["trial_id"].isin(completed(table)["trial_id"])]
    for name, frame in (("trials.parquet", table), ("trials.csv", table),
                        ("curves.parquet", curves.reindex(columns=CURVE_COLUMNS)),
                        ("predictions.parquet", predictions.reindex(columns=PREDICTION_COLUMNS))):
        write_table(run_dir / name, frame)
    return table


def write_table(path: Path, frame: pd.DataFrame) -> Path:
    """A table written atomically as parquet or CSV (by the file's suffix)."""
    if path.suffix == ".csv":
        return write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False))
    return write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


TABLES = {"trials": ("trials.parquet", "results table"),
          "predictions": ("predictions.parquet", "per-image predictions table")}


def load(run: str | os.PathLike, summary: bool = False, predictions: bool = False) -> pd.DataFrame:
    """A run's results table: one row per trained model and seed, with ``summary=True`` one row per config, with
    ``predictions=True`` one row per trained model, evaluation split and image.

    Args:
        run: A run's name under ``results/`` or its folder's path; a running run's tables hold what has finished.
        summary: Return the summary (``summary.parquet``: selection numbers, confirmed test means with 95 %
            intervals, paired Δ vs ResNet50 and at equal MACs, costs) instead of ``trials.parquet``.
        predictions: Return ``predictions.parquet`` (``PREDICTION_COLUMNS``: which val and test images each
            completed model got right).

    Returns:
        The table, columns as in docs/ARCHITECTURE.md.

    Raises:
        UsageError: the run has no such table or it is damaged (one line naming the file), or both flags were given.

    Example:
        >>> summary = load("qlblock-digits-20261126-120000", summary=True)  # doctest: +SKIP
        >>> summary[["name", "n_confirm", "test_top1_mean"]]  # doctest: +SKIP
    """
    if summary and predictions:
        raise UsageError("load(): pass summary=True or predictions=True, not both")
    file, what = TABLES["predictions" if predictions else "trials"]
    path = run_path(run) / file
    if not path.is_file():
        raise UsageError(f"no {what} at {path}: run an ablation first, or pass its results/<run> folder")
    return analysis_of(path.parent).summary if summary else read_table(path)


def analysis_of(run_dir: str | os.PathLike):
    """A run folder's analysis (:class:`ablate.analysis.Analysis`): the one saved beside its tables when they have
    not changed since, else computed now and saved (a read-only folder is analysed, not written).

    Raises:
        UsageError: The folder has no trials table, or a table is damaged (one line naming the file).
    """
    from ablate.analysis.pipeline import analysis_of_tables

    folder = Path(run_dir)
    path = folder / "trials.parquet"
    if not path.is_file():
        raise UsageError(f"no results table at {path}: run an ablation first, or pass its results/<run> folder")
    trials = normalise_trials(read_table(path))
    predictions = read_table(folder / "predictions.parquet") if (folder / "predictions.parquet").is_file() else None
    return analysis_of_tables(folder, trials, predictions if predictions is not None and len(predictions) else None,
                              analysis_inputs(trials, read_run_json(folder)))


def normalise_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The table with every schema column (a table written while a run was in progress leaves some cells empty),
    numbers as numbers and labels as text, so later code needs no guards."""
    extra = [c for c in trials.columns if c not in TRIAL_COLUMNS]
    df = trials.reset_index(drop=True).reindex(columns=[*TRIAL_COLUMNS, *extra])
    for col in NUMERIC_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    for col in TEXT_COLUMNS:
        df[col] = df[col].fillna("").astype(str)
    return df


def analysis_inputs(trials: pd.DataFrame, meta: dict[str, Any]):
    """What the analysis takes from run.json besides the tables (:class:`ablate.analysis.AnalysisInputs`).

    Args:
        trials: The run's trials, normalised (:func:`normalise_trials`).
        meta: Its run.json.
    """
    from ablate.analysis import AnalysisInputs

    axes = detect_axes(trials, meta)
    space = meta.get("space")
    declared = space.get("axes") if isinstance(space, dict) else None
    varying = varying_axes(trials, axes)
    design_axes = [a for a in varying if a in declared] if isinstance(declared, list) and declared else varying
    reference = meta.get("reference")
    reference = dict(reference) if meta.get("design") == "ablation" and isinstance(reference, dict) else None
    recorded = meta.get("aliases")
    targets = set(recorded.values()) if isinstance(recorded, dict) else set()
    stand_ins = sorted(targets & set(trials.loc[trials["kind"] == Kind.BASELINE, "name"]))
    return AnalysisInputs(axes, tuple(design_axes), reference, choice_orders(meta), tuple(stand_ins))


def detect_axes(trials: pd.DataFrame, meta: dict[str, Any]) -> tuple[str, ...]:
    """The three known axes plus extra ones: declared in run.json's space, or string columns that look like axes."""
    space = meta.get("space")
    declared = set(space.get("axes") or ()) if isinstance(space, dict) else set()
    extra = sorted(c for c in trials.columns
                   if c not in TRIAL_COLUMNS and (c in declared or _looks_like_axis(trials, c)))
    return tuple(c for c in AXIS_COLUMNS if c in trials) + tuple(extra)


def _looks_like_axis(trials: pd.DataFrame, column: str) -> bool:
    """An undeclared axis is a string/bool column whose values repeat across candidates (ids and paths never do)."""
    dtype = trials[column].dtype
    if column.startswith("_") or not (dtype.kind in "OSUb" or isinstance(dtype, pd.StringDtype)):
        return False
    values = trials.loc[trials["kind"] == Kind.CANDIDATE, column].dropna()
    return len(values) < 4 or values.nunique() < len(values)


def varying_axes(trials: pd.DataFrame, axes: Iterable[str]) -> list[str]:
    """Axes with at least two choices among completed candidates; a single-valued axis says nothing."""
    candidates = completed(trials)
    candidates = candidates[candidates["kind"] == Kind.CANDIDATE]
    return [a for a in axes if candidates[a].nunique(dropna=True) >= 2]


def choice_orders(meta: dict[str, Any]) -> dict[str, list]:
    """Each axis's choices in the space file's order (its first choice is the effects' reference), from run.json;
    from the space it names when run.json does not list them; empty when that cannot be read either."""
    space = meta.get("space")
    space = space if isinstance(space, dict) else {"name": space}
    if isinstance(space.get("choices"), dict):  # run.json keeps them: no space file to load, no torch to import
        return {axis: list(choices) for axis, choices in space["choices"].items()}
    from ablate.space import load_space

    for source in (space.get("path"), space.get("name")):
        if not source or not isinstance(source, str):
            continue
        try:
            return {axis.name: list(axis.choices) for axis in load_space(source).axes}
        except (UsageError, OSError, ValueError, TypeError, KeyError, AttributeError):
            continue
    return {}


def load_curves(run: str | os.PathLike) -> pd.DataFrame:
    path = run_path(run) / "curves.parquet"
    return read_table(path) if path.is_file() else pd.DataFrame(columns=CURVE_COLUMNS)


def read_run_json(run_dir: Path) -> dict[str, Any]:
    """run.json ({} when the folder has none); a damaged one is a one-line UsageError naming it."""
    return read_json(run_dir / "run.json")


def write_run_json(run_dir: Path, meta: dict[str, Any]) -> None:
    write_json(run_dir / "run.json", meta, indent=2, default=str)


def versions() -> dict[str, str]:
    import optuna
    import ray
    import timm
    import torch

    import ablate

    return {"ablate": ablate.__version__, "python": platform.python_version(), "torch": torch.__version__,
            "timm": timm.__version__, "optuna": optuna.__version__, "ray": ray.__version__}


def hardware() -> dict[str, Any]:
    """What the driver sees; a cluster's nodes are summarised by Ray's resources in run.json too."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = torch.cuda.device_count()
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "gpu": torch.cuda.get_device_name(0) if gpus else None,
            "gpu_count": gpus, "device": "cuda" if gpus else "cpu", "platform": sys.platform}
