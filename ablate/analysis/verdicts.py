"""A report's verdicts as one family: every comparison that could say "X is better", Holm-adjusted together.

The family of an ablation design (:mod:`ablate.analysis.ablation`): every variant against the reference block, and
the reference against every baseline. The family of the other designs (:func:`verdict_family`):
- every estimable per-axis main effect (matched pairs of configs differing in that axis alone, one run-seed model
  per config: :func:`ablate.analysis.effects`);
- the best candidate against every baseline: "best" is the confirmed config that selection ranked first (the run
  seed's val top-1), judged on the fresh seeds' test top-1, which played no part in choosing it;
- every confirmed candidate against the best baseline costing no more ("Δ at equal MACs"), where that is not
  already one of the comparisons above.

Holm's step-down (statsmodels ``multipletests``) keeps the chance of any false "X is better" in a report at or
below α = 0.05; a comparison gets a verdict only when its adjusted p is below α. Each comparison also states the
smallest difference it could detect with 80 % power at the family's first Holm step (α/m, two-sided, Student t
with its own df: scipy's non-central t), so that "no clear difference" is not read as "no difference".
Configs seen only under the run's seed are described elsewhere (numbers with intervals), never judged here.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import optimize, stats
from statsmodels.stats.multitest import multipletests

from ablate.analysis.ablation import ablation_rows
from ablate.analysis.equal_cost import CHEAPER
from ablate.analysis.evidence import Evidence
from ablate.core.schema import EvidenceKind, Kind, VerdictKind, of_kind

ALPHA = 0.05
POWER = 0.8
METHOD = "Holm"
VERDICT_COLUMNS = ["kind", "a", "b", "axis", "change", "estimate", "se", "df", "ci_low", "ci_high", "p_value",
                   "p_adjusted", "better", "detectable", "n_a", "n_b", "n_images"]
KINDS = {VerdictKind.ABLATION: "ablation row", VerdictKind.REFERENCE: "reference vs baseline",
         VerdictKind.EFFECT: "axis effect", VerdictKind.BASELINE: "best candidate vs baseline",
         VerdictKind.EQUAL_MACS: "Δ at equal MACs"}


@lru_cache(maxsize=4096)
def _detectable_factor(df: float, alpha: float, power: float) -> float:
    """The detectable difference in units of se: the non-centrality at which the two-sided t-test at ``alpha``
    rejects towards the true sign with probability ``power`` (scipy's non-central t, solved by ``brentq``).

    The test's other tail (rejecting with the wrong sign: below 1e-6 of the power here) is left out, which makes the
    stated difference larger by as much, never smaller. statsmodels' ``TTestPower.solve_power`` was used before and
    is not: at few df and many comparisons it returned differences with far less power than stated (7 % at df 1,
    α = 0.05 / 12; 47 % at df 3), and its bracket search can wander to non-centralities near −10⁵, where scipy's
    non-central t takes seconds per call (9 s at df 78, α = 0.05 / 12). ``tests/test_analysis.py`` checks the
    power by simulation.
    """
    critical = float(stats.t.isf(alpha / 2.0, df))

    def shortfall(noncentrality: float) -> float:
        return float(stats.nct.sf(critical, df, noncentrality)) - power

    high = 4.0
    while shortfall(high) < 0 and high < 1e6:  # power grows with the non-centrality: double until it holds 80 %
        high *= 2.0
    noncentrality = optimize.brentq(shortfall, 0.0, high, xtol=1e-12)
    median_unbiased = math.sqrt(df / stats.chi2.median(df))  # σ̂ is biased low at few df: its median is below σ
    return noncentrality * median_unbiased


def detectable_difference(se: float, df: float, alpha: float, power: float = POWER) -> float:
    """The true difference (same unit as ``se``) that a two-sided t-test at ``alpha`` with ``df`` degrees of freedom
    detects with probability ``power`` (≈ 2.8 · se at α = 0.05 and large df).

    ``se`` is scaled to a median-unbiased estimate of the noise, ``se · √(df / χ²_df,0.5)``: with few degrees of
    freedom a plain estimate is smaller than the truth in most runs, and so would promise power it does not have.
    """
    if not (math.isfinite(se) and math.isfinite(df) and se > 0 and df > 0):
        return math.nan
    df = float(f"{min(float(df), 1000.0):.2g}")  # two significant digits: finer changes nothing visible
    return _detectable_factor(df, float(alpha), float(power)) * se


def best_candidate(summary: pd.DataFrame) -> pd.Series | None:
    """The confirmed candidate that selection ranked first (None when no candidate was confirmed)."""
    confirmed = summary[(summary["kind"] == Kind.CANDIDATE) & (summary["evidence"] == EvidenceKind.CONFIRMED)]
    confirmed = confirmed.dropna(subset=["selection_rank"])
    return None if confirmed.empty else confirmed.sort_values("selection_rank").iloc[0]


def verdict_family(summary: pd.DataFrame, effects_table: pd.DataFrame, evidence: Evidence,
                   alpha: float = ALPHA, reference: dict | None = None) -> pd.DataFrame:
    """Every verdict-bearing comparison of a report, Holm-adjusted as one family.

    Args:
        summary: The per-config summary (:func:`ablate.analysis.summarize`).
        effects_table: The per-axis effects (:func:`ablate.analysis.effects`); not used by an ablation.
        evidence: The test split's per-image evidence (:class:`ablate.analysis.evidence.Evidence`).
        alpha: The family-wise error rate.
        reference: An ablation design's reference point (axis → value): the family is then its ablation rows.

    Returns:
        ``VERDICT_COLUMNS``, one row per comparison ``a − b`` (pp): its estimate, se, df, 95 % CI, raw and
        Holm-adjusted p, ``better`` (``a``'s or ``b``'s name when adjusted p < alpha, else None), the difference
        detectable with 80 % power at alpha / m, and the sizes behind it. ``attrs``: ``family_size``, ``alpha``,
        ``method``.
    """
    rows = (ablation_rows(summary, evidence, reference) if reference is not None
            else _effect_rows(effects_table) + _confirmed_rows(summary, evidence))
    p = np.array([row["p_value"] for row in rows], dtype=float)
    testable = np.isfinite(p)
    m = int(testable.sum())
    adjusted = np.full(len(rows), math.nan)
    reject = np.zeros(len(rows), dtype=bool)
    if m:
        reject[testable], adjusted[testable], _, _ = multipletests(p[testable], alpha=alpha, method=METHOD.lower())
    for row, p_adj, significant in zip(rows, adjusted, reject):
        row["p_adjusted"] = p_adj
        row["better"] = (row["a"] if row["estimate"] > 0 else row["b"]) if significant else None
        row["detectable"] = detectable_difference(row["se"], row["df"], alpha / m) if m else math.nan
    table = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    table.attrs.update(family_size=m, alpha=alpha, method=METHOD)
    return table


def _effect_rows(effects_table: pd.DataFrame) -> list[dict]:
    rows = []
    for effect in effects_table[effects_table["estimable"].astype(bool)].itertuples(index=False):
        rows.append({"kind": VerdictKind.EFFECT, "a": effect.choice, "b": effect.reference, "axis": effect.axis,
                     "change": f"{effect.axis}: {effect.reference} → {effect.choice}",
                     "estimate": effect.estimate, "se": effect.se, "df": float(effect.df_resid),
                     "ci_low": effect.ci_low, "ci_high": effect.ci_high, "p_value": effect.p_value,
                     "n_a": int(effect.n), "n_b": int(effect.n_reference), "n_images": math.nan})
    return rows


def _confirmed_rows(summary: pd.DataFrame, evidence: Evidence) -> list[dict]:
    """The best confirmed candidate vs each baseline, then each confirmed candidate at equal MACs (fresh seeds)."""
    best = best_candidate(summary)
    if best is None:
        return []
    baselines = [n for n in of_kind(summary, Kind.BASELINE)["name"] if evidence.has(n, EvidenceKind.CONFIRMED)]
    pairs = [(VerdictKind.BASELINE, best["name"], b) for b in baselines]
    confirmed = summary[(summary["kind"] == Kind.CANDIDATE) & (summary["evidence"] == EvidenceKind.CONFIRMED)]
    for cand in confirmed.sort_values("selection_rank").itertuples(index=False):
        matched = cand.equal_macs_baseline
        if isinstance(matched, str) and matched != CHEAPER and matched in baselines \
                and (cand.name, matched) not in {(a, b) for _, a, b in pairs}:
            pairs.append((VerdictKind.EQUAL_MACS, cand.name, matched))
    rows = []
    for kind, a, b in pairs:
        est = evidence.difference(a, b, EvidenceKind.CONFIRMED)
        rows.append({"kind": kind, "a": a, "b": b, "axis": None, "change": f"vs {b}", "estimate": est.estimate,
                     "se": est.se,
                     "df": est.df, "ci_low": est.low, "ci_high": est.high, "p_value": est.p_value,
                     "n_a": est.n_seeds[0] if est.n_seeds else 0, "n_b": est.n_seeds[-1] if est.n_seeds else 0,
                     "n_images": est.n_images})
    return rows
