"""Fidelity: do two runs (or a cheap and a full measurement) rank the same configs the same way?

Kendall τ (with a paired bootstrap CI over items, scipy.stats.bootstrap) and Spearman ρ (scipy.stats) with their
p-values between two runs' shared configs, the overlap of their top-k, and, for one run, τ between each design
trial's first-rung (epoch 1) and final val top-1: how far ASHA's early stops can be trusted. Design trials are never
stopped early, so that τ is not computed over ASHA's survivors only (a range restriction that lowers it). NATS-Bench
publishes the same kind of numbers (12- vs 200-epoch correlations).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ablate.analysis.summary import completed_rows
from ablate.core.schema import Kind, Phase

MIN_SHARED = 3
BOOTSTRAP_RESAMPLES = 999


@dataclass(frozen=True)
class RankAgreement:
    """Attributes:
        n: Pairs compared.
        kendall_tau, kendall_p: Kendall's τ-b and its two-sided p-value (NaN with n < 3 or a constant side).
        tau_ci_low, tau_ci_high: 95 % percentile bootstrap interval of τ over the items (pairs resampled together).
        spearman_rho, spearman_p: Spearman's ρ and its two-sided p-value.
        top_k: k of the overlap (min(k, n)); 0 when not computed.
        top_k_overlap: Configs in both top-k lists.
        pairs: The values compared, one row per shared item (``a``, ``b``; index: the item).
    """

    n: int
    kendall_tau: float
    kendall_p: float
    spearman_rho: float
    spearman_p: float
    top_k: int
    top_k_overlap: int
    pairs: pd.DataFrame
    tau_ci_low: float = math.nan
    tau_ci_high: float = math.nan


def _tau(x, y, axis=-1):
    """Kendall τ along the last axis (vectorised over bootstrap resamples); NaN for a constant side."""
    x, y = np.atleast_2d(x), np.atleast_2d(y)
    out = np.array([stats.kendalltau(a, b).statistic for a, b in zip(x, y)])
    return out if out.size > 1 else out[0]


def tau_interval(a, b, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of Kendall τ, resampling (a, b) pairs together."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < MIN_SHARED:
        return math.nan, math.nan
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resamples with a constant side give NaN τ; scipy warns about each
        result = stats.bootstrap((a, b), _tau, paired=True, vectorized=True, n_resamples=BOOTSTRAP_RESAMPLES,
                                 method="percentile", random_state=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return float(low), float(high)


def rank_agreement(a: pd.Series, b: pd.Series, k: int = 5) -> RankAgreement:
    """Rank correlations and top-k overlap of two score series over their shared (non-NaN) index.

    Args:
        a: Scores from the first source, indexed by item (e.g. config name).
        b: Scores from the second source.
        k: Size of the top lists compared (higher score = better).
    """
    pairs = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    n = len(pairs)
    tau = tau_p = rho = rho_p = low = high = math.nan
    if n >= MIN_SHARED and pairs["a"].nunique() > 1 and pairs["b"].nunique() > 1:
        tau, tau_p = stats.kendalltau(pairs["a"], pairs["b"])
        rho, rho_p = stats.spearmanr(pairs["a"], pairs["b"])
        low, high = tau_interval(pairs["a"], pairs["b"])
    top_k = min(k, n)
    overlap = len(set(pairs["a"].nlargest(top_k).index) & set(pairs["b"].nlargest(top_k).index)) if top_k else 0
    return RankAgreement(n, float(tau), float(tau_p), float(rho), float(rho_p), top_k, overlap, pairs, low, high)


def mean_scores(trials: pd.DataFrame, metric: str = "val_top1", kind: str | None = None) -> pd.Series:
    """Mean ``metric`` per config name over completed rows (all seeds), of one ``kind`` when given."""
    done = completed_rows(trials)
    if kind is not None:
        done = done[done["kind"] == kind]
    return done.groupby("name")[metric].mean().dropna()


def compare_runs(a_trials: pd.DataFrame, b_trials: pd.DataFrame, k: int = 5,
                 metric: str = "val_top1", kind: str | None = None) -> RankAgreement:
    """Agreement of two runs on their shared configs' mean val top-1, matched by name.

    Args:
        a_trials: Trials table of run A.
        b_trials: Trials table of run B.
        k: Size of the top lists whose overlap is counted.
        metric: The compared column.
        kind: ``candidate`` for candidates only; None for every config (candidates and baselines).
    """
    return rank_agreement(mean_scores(a_trials, metric, kind), mean_scores(b_trials, metric, kind), k)


def rung_fidelity(curves: pd.DataFrame, trials: pd.DataFrame, rung: int = 1, k: int = 3) -> RankAgreement:
    """τ between each completed design trial's val top-1 at epoch ``rung`` and its final val top-1.

    Design trials are trained to the full budget whatever their early numbers (ASHA never stops them), so this is
    the correlation early stopping relies on, not one restricted to the trials it let through; search trials and
    confirmation reruns are left out.

    Args:
        curves: ``curves.parquet`` (``trial_id``, ``epoch``, ``val_top1``).
        trials: The trials table (completed candidates give the trial ids and the final val top-1).
        rung: The epoch of the first rung (ASHA's grace period; 1 by default).
        k: Size of the top lists compared.

    Returns:
        The agreement over trials that have both numbers and ran past the rung (n = 0 when curves lack them).
    """
    done = completed_rows(trials)
    done = done[(done["kind"] == Kind.CANDIDATE) & (done["phase"] == Phase.DESIGN) & done["val_top1"].notna()]
    needed = {"trial_id", "epoch", "val_top1"}
    if curves.empty or not needed <= set(curves.columns) or "trial_id" not in done:
        return rank_agreement(pd.Series(dtype=float), pd.Series(dtype=float), k)
    curves = curves.assign(trial_id=curves["trial_id"].astype(str))
    final_epoch = pd.to_numeric(curves.groupby("trial_id")["epoch"].max())
    early = curves[curves["epoch"] == rung].groupby("trial_id")["val_top1"].mean()
    final = done.assign(trial_id=done["trial_id"].astype(str)).groupby("trial_id")["val_top1"].mean()
    ran_past = final_epoch[final_epoch > rung].index
    return rank_agreement(early[early.index.isin(ran_past)], final, k)
