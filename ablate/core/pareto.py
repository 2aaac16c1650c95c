"""Pareto fronts over one maximised and one minimised metric (accuracy against a cost).

Kept apart from the report so the search code and the tests can use the same definition of "optimal".
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def pareto_mask(df: pd.DataFrame, maximize: str, minimize: str) -> pd.Series:
    """Mark the rows no other row dominates, as a bool Series on ``df.index``.

    A row is dominated when another row is at least as good on both metrics and strictly better on one, so exact
    ties all stay on the front. A row missing either metric is never optimal and dominates nothing.
    """
    up = pd.to_numeric(df[maximize], errors="coerce").to_numpy(dtype=float)
    down = pd.to_numeric(df[minimize], errors="coerce").to_numpy(dtype=float)
    valid = np.isfinite(up) & np.isfinite(down)
    u, d = up[valid], down[valid]
    # [i, j]: row j is at least as good as row i on both metrics / strictly better on one.
    at_least = (u[None, :] >= u[:, None]) & (d[None, :] <= d[:, None])
    strictly = (u[None, :] > u[:, None]) | (d[None, :] < d[:, None])
    dominated = (at_least & strictly).any(axis=1)
    mask = np.zeros(len(df), dtype=bool)
    mask[np.flatnonzero(valid)] = ~dominated
    return pd.Series(mask, index=df.index, name="pareto")


def pareto_front(df: pd.DataFrame, maximize: str, minimize: str) -> pd.DataFrame:
    """The optimal rows sorted by increasing cost, the order a step line through the front needs."""
    front = df[pareto_mask(df, maximize, minimize)]
    return front.sort_values([minimize, maximize], ascending=[True, True], kind="stable")
