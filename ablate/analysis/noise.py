"""The noise floor of a run: how large a top-1 difference must be before it can mean anything.

Two sources: the binomial standard error of a top-1 measured on n validation images (scipy.stats.binom), and the
seed-to-seed standard deviation measured from configs trained under several training seeds (the pooled
within-config std, i.e. the residual std of a one-way OLS ``val_top1 ~ C(name)``, statsmodels).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats

from ablate.analysis.summary import completed_rows


@dataclass(frozen=True)
class NoiseFloor:
    """Attributes:
        accuracy: Mean val top-1 (%) of the completed rows, where the binomial SE is taken.
        n_val: Validation images (None when unknown).
        binomial_se: √(p(1−p)/n_val) in percentage points (NaN when n_val is unknown).
        seed_std: Pooled within-config std of val top-1 over seeds (pp; NaN without a config of ≥ 2 seeds).
        seed_configs: Configs with ≥ 2 seeds that it pools.
        seed_rows: Their rows (one per seed).
        seed_df: Degrees of freedom of the pooled std (rows − configs).
    """

    accuracy: float
    n_val: int | None
    binomial_se: float
    seed_std: float
    seed_configs: int
    seed_rows: int
    seed_df: int


def binomial_se(accuracy_pct: float, n: int) -> float:
    """Standard error (pp) of a top-1 of ``accuracy_pct`` % measured on ``n`` images: binom(n, p).std() / n."""
    if not n or not math.isfinite(accuracy_pct):
        return math.nan
    p = min(max(accuracy_pct / 100.0, 0.0), 1.0)
    return 100.0 * float(stats.binom(int(n), p).std()) / int(n)


def seed_std(trials: pd.DataFrame, metric: str = "val_top1") -> tuple[float, int, int, int]:
    """Pooled within-config std of ``metric`` over configs with ≥ 2 completed seeds.

    Returns:
        (std in pp, configs, rows, degrees of freedom); std is NaN when no config has 2 seeds.
    """
    done = completed_rows(trials)
    by_seed = done.groupby(["name", "seed"], as_index=False)[metric].mean().dropna(subset=[metric])
    sizes = by_seed.groupby("name")[metric].transform("size")
    rows = by_seed[sizes >= 2]
    configs = int(rows["name"].nunique())
    if configs == 0:
        return math.nan, 0, 0, 0
    data = pd.DataFrame({"y": rows[metric].to_numpy(dtype=float), "g": rows["name"].astype(str).to_numpy()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.ols("y ~ C(g)", data=data).fit()
    return float(np.sqrt(fit.mse_resid)), configs, len(rows), int(fit.df_resid)


def noise_floor(trials: pd.DataFrame, n_val: int | None, metric: str = "val_top1") -> NoiseFloor:
    """Both noise estimates for a run.

    Args:
        trials: The trials table.
        n_val: Size of the validation split (run.json ``data.val``); None when unknown.
        metric: The accuracy column (percent).
    """
    done = completed_rows(trials)
    accuracy = float(done[metric].mean()) if len(done) else math.nan
    n_val = int(n_val) if n_val else None
    std, configs, rows, df = seed_std(trials, metric)
    return NoiseFloor(accuracy, n_val, binomial_se(accuracy, n_val or 0), std, configs, rows, df)
