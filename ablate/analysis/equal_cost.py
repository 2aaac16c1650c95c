""""Δ at equal MACs": a model's top-1 against the baselines' accuracy-vs-MACs front, interpolated in log MACs.

The baselines (ResNet50, R50-max, R50-hybrid) trace a cost/accuracy trade-off; a candidate is only better "per
FLOP" when it lies above that line at its own MACs. Beyond the front's MACs range there is nothing to compare with,
so the gap is NaN ("outside range"), never an extrapolation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ablate.pareto import pareto_front


def baseline_front(summary: pd.DataFrame, metric: str = "val_top1_mean", cost: str = "macs") -> pd.DataFrame:
    """The baselines' Pareto front (max ``metric``, min ``cost``) sorted by cost, one point per cost value.

    Args:
        summary: A table with ``kind``, ``metric`` and ``cost`` columns (e.g. :func:`ablate.analysis.summarize`).
        metric: Accuracy column to maximise.
        cost: Cost column to minimise; rows with a missing or non-positive cost are left out (no log).

    Returns:
        The front's rows (possibly empty), increasing in cost and in accuracy.
    """
    base = summary[summary["kind"] == "baseline"].dropna(subset=[metric, cost])
    base = base[base[cost] > 0]
    front = pareto_front(base, metric, cost)
    return front.drop_duplicates(subset=[cost], keep="last")


def delta_at_equal_macs(top1, macs, front_macs, front_top1) -> np.ndarray:
    """Top-1 minus the front interpolated linearly in log MACs at each model's MACs (numpy.interp).

    Args:
        top1: Accuracies of the models (percent).
        macs: Their MACs.
        front_macs: MACs of the front's points, increasing.
        front_top1: Accuracies of the front's points.

    Returns:
        Percentage points per model; NaN outside ``[min(front_macs), max(front_macs)]``, for a missing MACs value,
        or when the front is empty.
    """
    top1 = np.atleast_1d(np.asarray(top1, dtype=float))
    macs = np.atleast_1d(np.asarray(macs, dtype=float))
    fx = np.asarray(front_macs, dtype=float)
    fy = np.asarray(front_top1, dtype=float)
    if fx.size == 0:
        return np.full(top1.shape, np.nan)
    order = np.argsort(fx)
    xp, yp = np.log(fx[order]), fy[order]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log(macs)
    inside = np.isfinite(x) & (x >= xp[0]) & (x <= xp[-1])
    line = np.interp(np.where(inside, x, xp[0]), xp, yp)
    return np.where(inside, top1 - line, np.nan)


def in_front_range(macs, front_macs) -> np.ndarray:
    """True where a MACs value lies inside the front's MACs range (where "Δ at equal MACs" is defined)."""
    macs = np.atleast_1d(np.asarray(macs, dtype=float))
    fx = np.asarray(front_macs, dtype=float)
    if fx.size == 0:
        return np.zeros(macs.shape, dtype=bool)
    return np.isfinite(macs) & (macs >= fx.min()) & (macs <= fx.max())
