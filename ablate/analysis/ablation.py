"""The ablation table's comparisons: each variant against the reference block, and the reference against each baseline.

An ablation design trains a reference block R and every block that changes exactly one axis from it, all (and the
baselines) under the same S training seeds; nothing is selected, so every model is evidence. Each variant v is judged
against R on the test split, paired image by image, each side over its own seeds (:meth:`Evidence.difference`):
Δ_v = top-1(v) − top-1(R). The rows answer a local question — at R, does changing this one axis help? — and cannot
see interactions between axes (whether an axis's effect depends on another's setting); factorial designs can.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ablate.analysis.axis_effects import choice_label
from ablate.analysis.evidence import Evidence
from ablate.core.schema import BASELINE, CANDIDATE, EvidenceKind, VerdictKind, of_kind


def reference_name(summary: pd.DataFrame, reference: dict[str, Any]) -> str | None:
    """The summary's name of the candidate at the reference point (None when it has no completed model)."""
    rows = summary[summary["kind"] == CANDIDATE]
    for axis, value in reference.items():
        if axis not in rows:
            return None
        rows = rows[rows[axis].map(choice_label) == choice_label(value)]
    return None if rows.empty else str(rows["name"].iloc[0])


def variants(summary: pd.DataFrame, reference: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(name, axis, reference's choice, variant's choice)`` of every candidate that differs from the reference in
    exactly one axis, in the reference's axis order."""
    candidates = summary[summary["kind"] == CANDIDATE]
    out = []
    for axis in reference:
        for row in candidates.itertuples(index=False):
            changed = [a for a in reference if choice_label(getattr(row, a)) != choice_label(reference[a])]
            if changed == [axis]:
                out.append((row.name, axis, choice_label(reference[axis]), choice_label(getattr(row, axis))))
    return out


def ablation_rows(summary: pd.DataFrame, evidence: Evidence, reference: dict[str, Any]) -> list[dict]:
    """The family rows of an ablation: every variant vs the reference (``kind`` ``ablation``), then the reference
    vs every baseline (``kind`` ``reference``); each a paired Δ on the test split over all of both sides' seeds.

    Returns:
        Rows with ``kind``, ``a``, ``b``, ``axis``, ``change`` ("spatial: dwconv → twist"), the estimate and its
        se, df, interval and p, and the sizes behind them; none when the reference has no completed model.
    """
    name = reference_name(summary, reference)
    if name is None:
        return []
    pairs = [(VerdictKind.ABLATION, v, name, axis, f"{axis}: {old} → {new}")
             for v, axis, old, new in variants(summary, reference)]
    pairs += [(VerdictKind.REFERENCE, name, b, None, f"vs {b}") for b in of_kind(summary, BASELINE)["name"]]
    rows = []
    for kind, a, b, axis, change in pairs:
        est = evidence.difference(a, b, EvidenceKind.CONFIRMED)
        if not math.isfinite(est.estimate):
            continue
        rows.append({"kind": kind, "a": a, "b": b, "axis": axis, "change": change, "estimate": est.estimate,
                     "se": est.se, "df": est.df, "ci_low": est.low, "ci_high": est.high, "p_value": est.p_value,
                     "n_a": est.n_seeds[0], "n_b": est.n_seeds[-1], "n_images": est.n_images})
    return rows
