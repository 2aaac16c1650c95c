"""Per-axis effects, controlled for the other axes: an additive OLS with treatment coding (statsmodels).

``top1 ~ C(nonlinearity, Treatment(ref)) + C(spatial, Treatment(ref)) + C(width, Treatment(ref))`` over one
observation per distinct network (twin configs are one: :mod:`ablate.analysis.twins`): the full-budget candidate rows of the run's own seed (design and search phases). The
confirmation reruns of the selected configs are left out: replicate seeds of a few configs are evidence about those
configs' noise, not about the axes, and counting them as independent rows would narrow the intervals falsely.
Each coefficient is one choice against its axis's reference choice, with the fitted model's 95 % CI. A choice the
data cannot pin down gets ``estimable = False`` and a one-line reason instead of a number: too few configs, confounded with other axes (its design-matrix column lies in the span of the
others), or too few residual degrees of freedom to estimate the noise.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from ablate.analysis.summary import search_rows

EFFECT_COLUMNS = ["axis", "choice", "reference", "estimate", "se", "ci_low", "ci_high", "p_value", "n", "n_reference",
                  "estimable", "reason", "n_model", "df_resid"]


def choice_label(value: Any) -> str:
    """A choice as text: widths as in config names (2, 0.25), never 2.0."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def effects(trials: pd.DataFrame, axes: Sequence[str], metric: str = "val_top1",
            reference: Mapping[str, Any] | None = None, *, min_rows: int = 2, min_resid_df: int = 2,
            confidence: float = 0.95, stand_ins: Sequence[str] = ()) -> pd.DataFrame:
    """Each non-reference choice of each axis against the reference choice, from one additive OLS fit.

    Args:
        trials: The trials table; completed candidate rows of the run's own seed with a finite ``metric`` are used
            (one per config).
        axes: Axis columns to put in the model (axes with one observed choice add nothing and are left out).
        metric: The response column (percent).
        reference: Per axis, either the reference choice or the choices in the space file's order (the first one
            with at least ``min_rows`` rows is the reference). Axes not given: the most common choice.
        min_rows: Fewest configs a choice needs to be estimated.
        min_resid_df: Fewest residual degrees of freedom for a noise estimate (and so a CI).
        confidence: Coverage of the intervals.
        stand_ins: Baselines whose network is a point of the space (``relu-hybrid-w0.25`` is R50-hybrid): their
            run-seed rows count as that point's observation.

    Returns:
        ``EFFECT_COLUMNS``: ``estimate`` (pp vs the reference), ``se``, ``ci_low``/``ci_high``, ``p_value``
        (t-test of 0), ``n``/``n_reference`` (configs with the choice / the reference), ``estimable`` and
        ``reason`` ("" when estimable), ``n_model`` configs and ``df_resid`` of the fit. ``attrs["formula"]`` holds the model as text.
    """
    rows = search_rows(trials)
    points = (rows["kind"] == "candidate") | rows["name"].isin(list(stand_ins))
    rows = rows[points & np.isfinite(pd.to_numeric(rows[metric], errors="coerce"))]
    axes = [a for a in axes if a in rows.columns]
    rows = rows.dropna(subset=axes)
    if len(rows):  # one observation per config (a table with several run-seed rows of a config: their mean)
        rows = rows.groupby("name", sort=False).agg({metric: "mean", **{a: "first" for a in axes}}).reset_index()
    reference = dict(reference or {})
    coded, orders, refs = {}, {}, {}
    for axis in axes:
        labels = rows[axis].map(choice_label)
        counts = labels.value_counts()
        orders[axis] = _order(axis, counts, reference.get(axis))
        refs[axis] = next((c for c in orders[axis] if counts.get(c, 0) >= min_rows), None)
        coded[axis] = labels
    model_axes = [a for a in axes if refs[a] is not None and coded[a].nunique() >= 2]
    fit, names, aliased = _fit(rows, coded, model_axes, refs, orders, metric)
    out = []
    for axis in axes:
        counts = coded[axis].value_counts()
        for choice in orders[axis]:
            if choice == refs[axis]:
                continue
            out.append(_effect_row(axis, choice, refs[axis], int(counts.get(choice, 0)), counts, fit,
                                   names.get((axis, choice)), aliased, min_rows, min_resid_df, confidence,
                                   len(rows)))
    table = pd.DataFrame(out, columns=EFFECT_COLUMNS)
    table.attrs["formula"] = f"{metric} ~ " + " + ".join(
        f"C({a}, Treatment({refs[a]!r}))" for a in model_axes) if model_axes else f"{metric} ~ 1"
    table.attrs["n_model"] = len(rows)
    return table


def _order(axis: str, counts: pd.Series, given: Any) -> list[str]:
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


def _fit(rows, coded, model_axes, refs, orders, metric):
    """Fit the additive model.

    Returns:
        The statsmodels result (None without a model), the parameter name of each (axis, choice), and per
        parameter name whether it is aliased (its column is in the span of the others: not estimable).
    """
    if not model_axes or len(rows) == 0:
        return None, {}, {}
    data = pd.DataFrame({"y": pd.to_numeric(rows[metric]).to_numpy(dtype=float)})
    names = {}
    for i, axis in enumerate(model_axes):  # codes sort with the reference first, so the default Treatment picks it
        codes = _codes(axis, refs, orders)
        data[f"x{i}"] = coded[axis].map(codes).to_numpy()
        names.update({(axis, c): f"C(x{i})[T.{code}]" for c, code in codes.items()})
    formula = "y ~ " + " + ".join(f"C(x{i})" for i in range(len(model_axes)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank deficiency is reported per coefficient below
        fit = smf.ols(formula, data=data).fit()
    exog = np.asarray(fit.model.exog, dtype=float)
    rank = np.linalg.matrix_rank(exog)
    aliased = {name: np.linalg.matrix_rank(np.delete(exog, j, axis=1)) == rank
               for j, name in enumerate(fit.model.exog_names)}
    return fit, names, aliased


def _codes(axis, refs, orders) -> dict[str, str]:
    """Level codes L000, L001, … with the reference as L000 (patsy and formulaic both sort levels)."""
    ordered = [refs[axis]] + [c for c in orders[axis] if c != refs[axis]]
    return {c: f"L{k:03d}" for k, c in enumerate(ordered)}


def _effect_row(axis, choice, ref, n, counts, fit, name, aliased, min_rows, min_resid_df, confidence, n_rows):
    n_ref = int(counts.get(ref, 0)) if ref is not None else 0
    df_resid = float(fit.df_resid) if fit is not None else math.nan
    row = {"axis": axis, "choice": choice, "reference": ref, "estimate": math.nan, "se": math.nan, "ci_low": math.nan,
           "ci_high": math.nan, "p_value": math.nan, "n": n, "n_reference": n_ref, "estimable": False,
           "reason": "", "n_model": n_rows, "df_resid": df_resid}
    if ref is None:
        row["reason"] = f"no choice of {axis} has ≥ {min_rows} full-budget configs to serve as the reference"
    elif n == 0:
        row["reason"] = "no full-budget config with this choice"
    elif n < min_rows:
        row["reason"] = f"only {n} full-budget config{'' if n == 1 else 's'} with this choice (needs ≥ {min_rows})"
    elif fit is None or name is None:
        row["reason"] = "no model could be fitted"
    else:
        if aliased.get(name, True):
            row["reason"] = "confounded with other axes' choices in this design (rank-deficient design matrix)"
        elif df_resid < min_resid_df:
            row["reason"] = (f"too few residual degrees of freedom ({df_resid:.0f} from {n_rows} configs; "
                             f"needs ≥ {min_resid_df})")
        else:
            low, high = fit.conf_int(alpha=1 - confidence).loc[name]
            row.update(estimate=float(fit.params[name]), se=float(fit.bse[name]), ci_low=float(low), ci_high=float(high),
                       p_value=float(fit.pvalues[name]), estimable=True)
    return row
