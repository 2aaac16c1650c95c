""""Δ at equal MACs": a candidate against the best baseline that costs no more than it does.

The baselines (ResNet50, R50-max, R50-hybrid) trace a cost/accuracy step front: at any cost, the best baseline one
can have for that much is the most accurate baseline whose MACs do not exceed it. A candidate is only better "per
FLOP" when it beats that baseline. "Best" is decided on the run seed's validation top-1 — the selection data — so the
yardstick is never picked on the numbers that then judge the comparison. A candidate cheaper than every baseline
has no yardstick: it is "cheaper than every baseline".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ablate.core.schema import Kind, of_kind

CHEAPER = "cheaper than every baseline"


def baseline_front(summary: pd.DataFrame, score: str = "selection_val_top1", cost: str = "macs") -> pd.DataFrame:
    """The baselines' step front: each baseline that is the best one affordable at its own cost, by cost.

    Args:
        summary: A per-config table with ``kind``, ``name``, ``score`` and ``cost`` columns
            (:func:`ablate.analysis.summarize`).
        score: What "best" means (higher is better): the run seed's val top-1 by default.
        cost: The cost column; rows without a positive cost are left out.

    Returns:
        The front's rows, increasing in cost and in score.
    """
    base = of_kind(summary, Kind.BASELINE).dropna(subset=[score, cost])
    base = base[base[cost] > 0].sort_values([cost, score], ascending=[True, False], kind="stable")
    best, keep = -math.inf, []
    for index, value in base[score].items():
        if value > best:
            keep.append(index)
            best = value
    return base.loc[keep]


def cost_matched_baseline(cost: float, front: pd.DataFrame, cost_column: str = "macs") -> str | None:
    """The name of the best baseline costing no more than ``cost`` (the front's last point at or below it); None
    when every baseline costs more (or the cost is unknown)."""
    if not (isinstance(cost, (int, float, np.floating)) and math.isfinite(cost)) or front.empty:
        return None
    affordable = np.flatnonzero(front[cost_column].to_numpy(dtype=float) <= cost * (1 + 1e-9))
    return str(front["name"].iloc[affordable[-1]]) if len(affordable) else None
