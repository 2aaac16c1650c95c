"""Per-axis main effects from matched pairs: configs that differ in one axis only, compared on the same images.

For axis ``a``, choice ``c`` against the reference choice ``r``: every pair of configs of the design that share every
other axis's setting and differ only in ``a`` (``c`` vs ``r``) gives one Δ of their test top-1 (the run seed's
model of each; both scored on the same images). The main effect is the mean of those Δs over the other axes'
settings — "on average over the other axes" — and its interval is Student's t over the pairs (scipy), so it holds
the spread of the effect from setting to setting (the interactions) as well as each pair's own noise. An additive
OLS fitted to the same configs would put the interactions in its residual and read them as noise shared by every
coefficient; matched pairs keep each effect's own spread. Where the per-setting Δs disagree beyond their own noise
(Cochran's Q, statsmodels' ``combine_effects``, p < 0.05), the table keeps them (``settings``) so the report can say
where the axis helps. One observation per network (twins are one: :mod:`ablate.analysis.twins`); fewer than
``min_pairs`` pairs is "not estimable", with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ablate.analysis.evidence import t_p_value, t_quantile
from ablate.analysis.summary import search_rows
from ablate.core.schema import EvidenceKind, Kind

EFFECT_COLUMNS = ["axis", "choice", "reference", "estimate", "se", "ci_low", "ci_high", "p_value", "n", "n_reference",
                  "estimable", "reason", "n_model", "df_resid", "heterogeneity_p", "settings"]
MIN_PAIRS = 3  # two degrees of freedom for the spread of the pairs: fewer cannot say how large the effect varies


def choice_label(value: Any) -> str:
    """A choice as text: widths as in config names (2, 0.25), never 2.0."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def effects(trials: pd.DataFrame, axes: Sequence[str], metric: str = "val_top1",
            reference: Mapping[str, Any] | None = None, *, min_pairs: int = MIN_PAIRS, confidence: float = 0.95,
            stand_ins: Sequence[str] = (), evidence=None) -> pd.DataFrame:
    """Each non-reference choice of each axis against the reference choice, from the design's matched pairs.

    Args:
        trials: The trials table; completed run-seed rows (design and search phases) with a finite ``metric``, one
            observation per config (their mean where a config has several).
        axes: The design's axis columns.
        metric: The response column (percent).
        reference: Per axis, the reference choice, or the choices in the space file's order (the first one with a
            config is the reference). Axes not given: the most common choice.
        min_pairs: Fewest matched pairs for an estimate.
        confidence: Coverage of the intervals.
        stand_ins: Baselines whose network is a point of the space: their run-seed rows count as that point.
        evidence: The test split's :class:`~ablate.analysis.evidence.Evidence`, for each pair's own noise (the
            heterogeneity test); without it, no per-setting effects are singled out.

    Returns:
        ``EFFECT_COLUMNS``: ``estimate`` (pp, choice − reference, mean over the pairs), ``se``, ``ci_low`` /
        ``ci_high``, ``p_value`` (t-test of 0 over the pairs), ``n`` (pairs) and ``n_reference`` (configs with the
        reference choice), ``estimable`` and ``reason``, ``n_model`` (configs), ``df_resid`` (pairs − 1),
        ``heterogeneity_p`` (Cochran's Q) and ``settings`` (per-setting Δs as text, where they disagree clearly).
    """
    rows = search_rows(trials)
    points = (rows["kind"] == Kind.CANDIDATE) | rows["name"].isin(list(stand_ins))
    rows = rows[points & np.isfinite(pd.to_numeric(rows[metric], errors="coerce"))]
    axes = [a for a in axes if a in rows.columns]
    rows = rows.dropna(subset=axes)
    if len(rows):
        rows = rows.groupby("name", sort=False).agg({metric: "mean", **{a: "first" for a in axes}}).reset_index()
    labels = pd.DataFrame({a: rows[a].map(choice_label) for a in axes}, index=rows.index)
    out = []
    for axis in axes:
        counts = labels[axis].value_counts()
        order = _order(counts, (reference or {}).get(axis))
        ref = next((c for c in order if counts.get(c, 0) >= 1), None)
        others = [a for a in axes if a != axis]  # the setting of the other axes, once per axis
        setting = labels[others[0]].str.cat(labels[others[1:]], sep="/") if others else \
            pd.Series("", index=labels.index)
        for choice in order:
            if choice != ref:
                pairs = _pairs(labels[axis], setting, choice, ref) if ref is not None else []
                out.append(_effect(rows, axis, choice, ref, pairs, int((labels[axis] == ref).sum()), metric,
                                   min_pairs, confidence, evidence))
    table = pd.DataFrame(out, columns=EFFECT_COLUMNS)
    table.attrs["n_model"] = len(rows)
    table.attrs["method"] = "matched pairs: t over the pairs of configs that differ in this axis only"
    return table


def _order(counts: pd.Series, given: Any) -> list[str]:
    """Choices in the given order (space file) then the rest; otherwise most common first."""
    seen = sorted(counts.index, key=lambda c: (-counts[c], _natural(c)))
    if given is None:
        return seen
    given = [given] if isinstance(given, (str, int, float, np.generic)) else list(given)
    head = list(dict.fromkeys(choice_label(g) for g in given))
    return head + [c for c in seen if c not in head]


def _natural(label: str):
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


def _pairs(labels: pd.Series, setting: pd.Series, choice: str, ref: str) -> list[tuple[int, int, str]]:
    """``(row of choice, row of reference, the other axes' setting)`` of every matched pair."""
    with_choice = dict(zip(setting[labels == choice], setting.index[labels == choice]))
    with_ref = dict(zip(setting[labels == ref], setting.index[labels == ref]))
    return [(with_choice[s], with_ref[s], s) for s in with_choice if s in with_ref]


def _effect(rows, axis, choice, ref, pairs, n_ref, metric, min_pairs, confidence, evidence) -> dict:
    row = {"axis": axis, "choice": choice, "reference": ref, "estimate": math.nan, "se": math.nan, "ci_low": math.nan,
           "ci_high": math.nan, "p_value": math.nan, "n": len(pairs), "n_reference": n_ref, "estimable": False,
           "reason": "", "n_model": len(rows), "df_resid": float(len(pairs) - 1), "heterogeneity_p": math.nan,
           "settings": ""}
    if ref is None:
        row["reason"] = f"no config of {axis} to serve as the reference"
        return row
    if len(pairs) < min_pairs:
        row["reason"] = (f"only {len(pairs)} matched pair{'' if len(pairs) == 1 else 's'} (configs differing in "
                         f"{axis} alone; needs ≥ {min_pairs}): a grid, or a larger design, has more")
        return row
    deltas = np.array([rows.at[a, metric] - rows.at[b, metric] for a, b, _ in pairs], dtype=float)
    mean, se, df = float(deltas.mean()), float(deltas.std(ddof=1) / math.sqrt(len(deltas))), len(deltas) - 1
    if not se > 0:
        row["reason"] = "every matched pair gives the same Δ: no spread to build an interval on"
        return row
    half = t_quantile(0.5 + confidence / 2, df) * se
    row.update(estimate=mean, se=se, ci_low=mean - half, ci_high=mean + half, estimable=True,
               p_value=t_p_value(mean / se, df))
    if evidence is not None:
        row.update(_heterogeneity(rows, pairs, deltas, evidence))
    return row


def _heterogeneity(rows, pairs, deltas, evidence) -> dict:
    """Cochran's Q of the per-setting Δs against each pair's own noise (statsmodels ``combine_effects``); the
    settings with their Δ where Q says they disagree (p < 0.05)."""
    from statsmodels.stats.meta_analysis import combine_effects

    variances = []
    for a, b, _ in pairs:
        est = evidence.difference(rows.at[a, "name"], rows.at[b, "name"], EvidenceKind.RUN_SEED)
        variances.append((est.se / 100) ** 2 if math.isfinite(est.se) and est.se > 0 else math.nan)
    variances = np.array(variances) * 1e4  # pp²
    if not np.isfinite(variances).all():
        return {}
    result = combine_effects(deltas, variances)
    p = float(stats.chi2.sf(result.q, len(deltas) - 1))
    settings = "; ".join(f"{s}: {d:+.1f}" for (_, _, s), d in zip(pairs, deltas)) if p < 0.05 else ""
    return {"heterogeneity_p": p, "settings": settings}
