"""Which axis matters: the share of the config-to-config variance of test top-1 that each axis and each pair of axes
explains, with bootstrap intervals — where Optuna's fANOVA / PED-ANOVA give point importances only.

Over the design's configs (one run-seed model each, twins merged), an ANOVA with every axis and every pair of axes
that the design can estimate (statsmodels ``anova_lm``, type II sums of squares) splits the total sum of squares;
each term's share is its sum of squares over the total, and what no term explains is the residual (higher-order
interactions and each model's own noise). The interval resamples the test images (every config scored on the same
resample, so their differences stay paired) and refits: it says how much of a share the finite test set could have
made up.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm

from ablate.analysis.axis_effects import choice_label

BOOTSTRAP = 200
SHARE_COLUMNS = ["term", "share", "ci_low", "ci_high", "df"]


def variance_shares(configs: pd.DataFrame, hits: dict[str, np.ndarray], axes: list[str], *,
                    bootstrap: int = BOOTSTRAP, seed: int = 0) -> pd.DataFrame:
    """Each axis's and pair of axes' share (%) of the configs' variance, with a 95 % interval.

    Args:
        configs: One row per config: ``name`` and the axis columns.
        hits: Config name → its run-seed model's per-image test hits (one array each, the same images).
        axes: The design's varying axes.
        bootstrap: Image resamples for the intervals.
        seed: Seeds the resampling.

    Returns:
        ``SHARE_COLUMNS``, one row per term (``spatial``, ``nonlinearity × spatial``, …, then ``residual``); empty
        when the design leaves no residual degree of freedom.
    """
    configs = configs[configs["name"].isin(list(hits))].reset_index(drop=True)
    data = pd.DataFrame({f"x{i}": configs[a].map(choice_label) for i, a in enumerate(axes)})
    names = {f"C(x{i})": a for i, a in enumerate(axes)}
    terms = list(names) + [f"{a}:{b}" for a, b in itertools.combinations(names, 2)]
    matrix = np.stack([hits[n] for n in configs["name"]]).astype(float)
    fitted = _shares(data, matrix.mean(axis=1), terms)
    while fitted is None and len(terms) > len(names):  # drop pairs the design cannot afford, last first
        terms.pop()
        fitted = _shares(data, matrix.mean(axis=1), terms)
    if fitted is None:
        return pd.DataFrame(columns=SHARE_COLUMNS)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(bootstrap):
        images = rng.integers(0, matrix.shape[1], matrix.shape[1])
        shares = _shares(data, matrix[:, images].mean(axis=1), terms)
        if shares is not None:
            draws.append(shares["share"])
    low, high = (np.nanpercentile(np.array(draws), q, axis=0) if draws else np.full(len(fitted), np.nan)
                 for q in (2.5, 97.5))
    label = {t: " × ".join(names[p] for p in t.split(":")) for t in terms} | {"Residual": "residual"}
    return pd.DataFrame({"term": fitted.index.map(label), "share": fitted["share"].to_numpy(), "ci_low": low,
                         "ci_high": high, "df": fitted["df"].to_numpy()}, columns=SHARE_COLUMNS)


def _shares(data: pd.DataFrame, y: np.ndarray, terms: list[str]) -> pd.DataFrame | None:
    """Sums of squares of ``terms`` as % of the total, and their df; None when the fit leaves no residual df or is
    rank-deficient."""
    frame = data.assign(y=100 * y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.ols("y ~ " + " + ".join(terms), data=frame).fit()
        if fit.df_resid < 1 or np.linalg.matrix_rank(fit.model.exog) < fit.model.exog.shape[1]:
            return None
        table = anova_lm(fit, typ=2)
    total = float(((frame["y"] - frame["y"].mean()) ** 2).sum())
    if not total > 0:
        return None
    return pd.DataFrame({"share": 100 * table["sum_sq"] / total, "df": table["df"]})
