"""One row per config: seeds, mean / std / 95 % CI of val and test top-1, paired Δ vs ResNet50, costs.

Rows with equal ``seed`` of different configs share the data split (fixed by the run seed) and differ only in the
training seed's model, so differences are taken per seed ("paired") and only over seeds where both completed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ablate.analysis.equal_cost import baseline_front, delta_at_equal_macs
from ablate.analysis.intervals import Interval, t_interval
from ablate.models.baselines import BASELINE_NAMES, REFERENCE_BASELINE

DEFAULT_AXES = ("nonlinearity", "spatial", "width")
PHASES = ("design", "search", "confirm")
NO_SEED = -1  # old tables without a seed column: every row is one (the same) seed
COSTS = ("params", "macs", "elementwise_ops", "activations", "latency_ms", "throughput", "trial_latency_ms")
SUMMARY_COLUMNS = [
    "kind", "name", "config", "phases", "n", "seeds",
    "val_top1_mean", "val_top1_std", "val_top1_ci_low", "val_top1_ci_high",
    "test_top1_mean", "test_top1_std", "test_top1_ci_low", "test_top1_ci_high", "test_top1_n",
    "delta_mean", "delta_std", "delta_ci_low", "delta_ci_high", "delta_n", "delta_equal_macs",
    *COSTS, "epochs", "symmetry_gap", "symmetric",
]


def completed_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """Full-budget rows (``status == "completed"``; a table without ``status`` counts as completed), with ``kind``,
    ``seed`` and ``phase`` filled in for old-style tables."""
    df = trials if "status" not in trials else trials[trials["status"] == "completed"]
    df = df.copy()
    if "kind" not in df:
        df["kind"] = np.where(df["name"].isin(BASELINE_NAMES), "baseline", "candidate")
    seed = pd.to_numeric(df["seed"], errors="coerce") if "seed" in df else pd.Series(np.nan, index=df.index)
    df["seed"] = seed.fillna(NO_SEED).astype(int)
    df["phase"] = df["phase"].astype("string").fillna("") if "phase" in df else ""
    for column in ("val_top1", "test_top1"):
        df[column] = pd.to_numeric(df[column], errors="coerce") if column in df else np.nan
    return df


def per_seed(done: pd.DataFrame, name: str, metric: str = "val_top1") -> pd.Series:
    """A config's metric per training seed (repeated rows of one seed averaged), indexed by seed."""
    rows = done[done["name"] == name]
    return rows.groupby("seed")[metric].mean().dropna()


def paired(values: pd.Series, reference: pd.Series) -> Interval:
    """Mean and 95 % t-interval of ``values − reference`` over the seeds both hold."""
    both = pd.concat([values.rename("a"), reference.rename("b")], axis=1, join="inner").dropna()
    return t_interval(both["a"] - both["b"])


def paired_delta(trials: pd.DataFrame, name: str, against: str = REFERENCE_BASELINE,
                 metric: str = "val_top1") -> Interval:
    """Paired Δ of config ``name`` vs config ``against`` over the seeds where both completed.

    Args:
        trials: The trials table (any statuses; only completed rows are used).
        name: The ``name`` of the config compared (candidate config string or baseline name).
        against: The ``name`` it is compared with, ResNet50 by default.
        metric: The column compared, in percent.

    Returns:
        Interval of Δ_s = metric(name, s) − metric(against, s); ``n`` is the number of paired seeds.
    """
    done = completed_rows(trials)
    return paired(per_seed(done, name, metric), per_seed(done, against, metric))


def summarize(trials: pd.DataFrame, axes: tuple[str, ...] | list[str] | None = None,
              reference: str = REFERENCE_BASELINE) -> pd.DataFrame:
    """One row per config (candidates and baselines) over its completed rows.

    Args:
        trials: The trials table (docs/ARCHITECTURE.md): ``kind``, ``name``, ``config``, axes, ``status``,
            ``val_top1``, ``test_top1``, costs, ``seed`` and optionally ``phase``.
        axes: Axis columns to carry over (default: nonlinearity, spatial, width where present).
        reference: The baseline the paired Δ is taken against.

    Returns:
        Columns ``SUMMARY_COLUMNS`` with the axes after ``config``, sorted by mean val top-1 (best first).
        ``n`` is the number of seeds with a val top-1, CIs are 95 % t-intervals (NaN with n < 2),
        ``delta_*`` is the paired Δ val top-1 vs ``reference`` (``delta_n`` paired seeds), ``delta_equal_macs``
        is mean val top-1 minus the baselines' front at the config's MACs (NaN outside the front's range), and
        costs are means over the config's rows.
    """
    axes = [a for a in (axes if axes is not None else DEFAULT_AXES) if a in trials.columns]
    columns = SUMMARY_COLUMNS[:3] + axes + SUMMARY_COLUMNS[3:]
    done = completed_rows(trials)
    if done.empty:
        return pd.DataFrame(columns=columns)
    ref_seeds = per_seed(done, reference)
    rows = [_summary_row(kind, name, group, axes, ref_seeds)
            for (kind, name), group in done.groupby(["kind", "name"], sort=False)]
    summary = pd.DataFrame(rows).reindex(columns=columns)
    front = baseline_front(summary)
    summary["delta_equal_macs"] = delta_at_equal_macs(summary["val_top1_mean"], summary["macs"], front["macs"],
                                                      front["val_top1_mean"])
    summary = summary.sort_values(["val_top1_mean", "name"], ascending=[False, True], na_position="last",
                                  kind="stable")
    return summary.reset_index(drop=True)


def _summary_row(kind: str, name: str, group: pd.DataFrame, axes: list[str], ref_seeds: pd.Series) -> dict:
    by_seed = group.groupby("seed")[["val_top1", "test_top1"]].mean()
    val, test = t_interval(by_seed["val_top1"]), t_interval(by_seed["test_top1"])
    delta = paired(by_seed["val_top1"].dropna(), ref_seeds)
    first = group.iloc[0]
    phases = set(group["phase"].astype(str))
    seeds = sorted(s for s in by_seed.index[by_seed["val_top1"].notna()] if s != NO_SEED)
    row = {"kind": kind, "name": name, "config": first.get("config", name),
           **{a: first[a] for a in axes},
           "phases": "+".join(p for p in PHASES if p in phases) or "+".join(sorted(phases - {""})),
           "n": val.n, "seeds": ",".join(str(s) for s in seeds),
           **_interval_columns("val_top1", val), **_interval_columns("test_top1", test), "test_top1_n": test.n,
           **_interval_columns("delta", delta), "delta_n": delta.n,
           "epochs": pd.to_numeric(group["epochs"], errors="coerce").max() if "epochs" in group else math.nan}
    for cost in COSTS:
        row[cost] = pd.to_numeric(group[cost], errors="coerce").mean() if cost in group else math.nan
    row.update(_symmetry(group))
    return row


def _symmetry(group: pd.DataFrame) -> dict:
    """The largest symmetry gap over a config's seeds, and whether every seed's model kept its logits."""
    if "symmetry_gap" not in group or "symmetric" not in group or group["symmetric"].isna().all():
        return {"symmetry_gap": math.nan, "symmetric": None}
    known = group["symmetric"].dropna()
    return {"symmetry_gap": pd.to_numeric(group["symmetry_gap"], errors="coerce").max(),
            "symmetric": bool(known.astype(bool).all())}


def _interval_columns(prefix: str, interval: Interval) -> dict[str, float]:
    return {f"{prefix}_mean": interval.mean, f"{prefix}_std": interval.std, f"{prefix}_ci_low": interval.low,
            f"{prefix}_ci_high": interval.high}
