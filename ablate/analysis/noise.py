"""The noise floor of a run: how large a top-1 difference must be before it can mean anything.

Two sources: the binomial standard error of a top-1 measured on n evaluation images (scipy.stats.binom), and the
seed-to-seed standard deviation measured from configs trained under several fresh confirmation seeds (the pooled
within-config std, i.e. the residual std of a one-way OLS ``top1 ~ C(name)``, statsmodels). The run seed's rows are
left out: selection picked the confirmed configs for how well that seed did, so it is not a draw like the others.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from ablate.analysis.summary import completed_rows
from ablate.core.schema import EVIDENCE_PHASES


@dataclass(frozen=True)
class NoiseFloor:
    """Attributes:
        accuracy: Mean top-1 (%) of the completed rows, where the binomial SE is taken.
        n_images: Evaluation images (None when unknown).
        binomial_se: √(p(1−p)/n_images) in percentage points (NaN when n_images is unknown).
        seed_std: Pooled within-config std of top-1 over fresh seeds (pp; NaN without a config of ≥ 2).
        seed_configs: Configs with ≥ 2 seeds that it pools.
        seed_rows: Their rows (one per seed).
        seed_df: Degrees of freedom of the pooled std (rows − configs).
    """

    accuracy: float
    n_images: int | None
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


def seed_std(done: pd.DataFrame, metric: str = "test_top1") -> tuple[float, int, int, int]:
    """Pooled within-config std of ``metric`` over configs with ≥ 2 completed confirmation seeds.

    Args:
        done: The run's completed rows, as :func:`ablate.analysis.summary.completed_rows` prepares them.
        metric: The accuracy column (percent).

    Returns:
        (std in pp, configs, rows, degrees of freedom); std is NaN when no config has 2 seeds.
    """
    done = done[done["phase"].isin(EVIDENCE_PHASES)]
    by_seed = done.groupby(["name", "seed"], as_index=False)[metric].mean().dropna(subset=[metric])
    sizes = by_seed.groupby("name")[metric].transform("size")
    rows = by_seed[sizes >= 2]
    configs = int(rows["name"].nunique())
    if configs == 0:
        return math.nan, 0, 0, 0
    groups = pd.get_dummies(rows["name"].astype(str).to_numpy(), dtype=float)  # the design of y ~ C(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.OLS(rows[metric].to_numpy(dtype=float), groups.to_numpy()).fit()
    return float(np.sqrt(fit.mse_resid)), configs, len(rows), int(fit.df_resid)


def noise_floor(trials: pd.DataFrame, n_images: int | None, metric: str = "test_top1") -> NoiseFloor:
    """Both noise estimates for a run.

    Args:
        trials: The trials table.
        n_images: Size of the evaluation split of ``metric`` (run.json ``data.test``); None when unknown.
        metric: The accuracy column (percent).
    """
    done = completed_rows(trials)
    accuracy = float(done[metric].mean()) if len(done) else math.nan
    n_images = int(n_images) if n_images else None
    std, configs, rows, df = seed_std(done, metric)
    return NoiseFloor(accuracy, n_images, binomial_se(accuracy, n_images or 0), std, configs, rows, df)
