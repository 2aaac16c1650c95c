"""One row per config: what selected it, what judges it, Δ vs ResNet50 and at equal MACs, costs.

Two kinds of numbers, never mixed:
- **selection** — the run seed's validation top-1 (``selection_val_top1``): the number the design ranks configs by
  and that picks the ones to confirm. It is optimistic for the configs it picked (winner's curse) and judges nothing.
- **evidence** — top-1 on the **test** split, which nothing selects on, from the fresh confirmation seeds for a
  confirmed config (``evidence == "confirm"``), else from the run seed's model (``"design"``, one seed). Intervals
  include the seed and the finite test set (:mod:`ablate.analysis.evidence`); Δs pair two configs image by image
  on the same evidence group.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ablate.analysis.equal_cost import CHEAPER, baseline_front, cost_matched_baseline
from ablate.analysis.evidence import MISSING, Estimate, Evidence
from ablate.analysis.selection import selection_key
from ablate.analysis.twins import ALIASES, merge_twins
from ablate.core.schema import (
    AXIS_COLUMNS,
    BASELINE_NAMES,
    COST_COLUMNS,
    EVIDENCE_PHASES,
    PHASES,
    REFERENCE_BASELINE,
    SELECTION_PHASES,
    SUMMARY_COLUMNS,
    EvidenceKind,
    Kind,
    Phase,
    completed,
)

DEFAULT_AXES = AXIS_COLUMNS
SEARCH_PHASES = SELECTION_PHASES  # the run's own seed: the trials that select
NO_SEED = -1  # old tables without a seed column: every row is one (the same) seed


def completed_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """Full-budget rows (:func:`ablate.core.schema.completed`), with ``kind``,
    ``seed`` and ``phase`` filled in for old-style tables, and twin configs merged (:func:`merge_twins`: one name
    per network, each model once)."""
    df = completed(trials)
    df = df.copy()
    if "kind" not in df:
        df["kind"] = np.where(df["name"].isin(BASELINE_NAMES), Kind.BASELINE.value, Kind.CANDIDATE.value)
    seed = pd.to_numeric(df["seed"], errors="coerce") if "seed" in df else pd.Series(np.nan, index=df.index)
    df["seed"] = seed.fillna(NO_SEED).astype(int)
    df["phase"] = df["phase"].astype("string").fillna(Phase.DESIGN.value) if "phase" in df else Phase.DESIGN.value
    for column in ("val_top1", "test_top1"):
        df[column] = pd.to_numeric(df[column], errors="coerce") if column in df else np.nan
    return merge_twins(df)


def search_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """Completed rows of the run's own seed (design and search phases): one per config, what selection sees."""
    done = completed_rows(trials)
    return done[done["phase"].isin(SEARCH_PHASES)]


def summarize(trials: pd.DataFrame, predictions: pd.DataFrame | Evidence | None = None,
              axes: tuple[str, ...] | list[str] | None = None, reference: str = REFERENCE_BASELINE,
              split: str = "test") -> pd.DataFrame:
    """One row per config (candidates and baselines) over its completed rows.

    Args:
        trials: The trials table (docs/ARCHITECTURE.md): ``kind``, ``name``, ``config``, axes, ``status``,
            ``val_top1``, ``test_top1``, costs, ``seed`` and ``phase``.
        predictions: The per-image evidence (``predictions.parquet``, or its :class:`Evidence` of ``split``);
            without it the evidence columns hold the rows' plain test means and no interval.
        axes: Axis columns to carry over (default: nonlinearity, spatial, width where present).
        reference: The baseline the paired Δ is taken against.
        split: The evaluation split of the evidence columns.

    Returns:
        Columns ``SUMMARY_COLUMNS`` (axes after ``config``), confirmed configs first, then by evidence top-1.
        ``selection_val_top1`` / ``selection_rank`` are the run seed's val top-1 and the candidates' rank by it;
        ``n_confirm`` counts fresh seeds; ``test_top1_*`` is the evidence top-1 with its 95 % interval;
        ``delta_*`` is the paired Δ vs ``reference``; ``equal_macs_baseline`` names the best baseline costing no
        more (or says the config is cheaper than every baseline) and ``delta_equal_macs_*`` is the Δ against it;
        costs are means over the config's rows.
    """
    axes = [a for a in (axes if axes is not None else DEFAULT_AXES) if a in trials.columns]
    columns = SUMMARY_COLUMNS[:3] + axes + SUMMARY_COLUMNS[3:]
    done = completed_rows(trials)
    if done.empty:
        return pd.DataFrame(columns=columns)
    evidence = predictions if isinstance(predictions, Evidence) else Evidence(predictions, split)
    rows = [_summary_row(kind, name, group, axes, evidence, split)
            for (kind, name), group in done.groupby(["kind", "name"], sort=False)]
    ranks = _selection_ranks(rows, done)
    front = baseline_front(pd.DataFrame(rows))
    means = {r["name"]: (r["test_top1_mean"], r["evidence"]) for r in rows if r["kind"] == Kind.BASELINE}
    for row in rows:
        row["selection_rank"] = ranks.get(row["name"], math.nan)
        row.update(_comparisons(row, means, evidence, reference, front))
    summary = pd.DataFrame(rows).reindex(columns=columns)
    summary = summary.assign(_confirmed=summary["evidence"] == EvidenceKind.CONFIRMED).sort_values(
        ["_confirmed", "test_top1_mean", "name"], ascending=[False, False, True], na_position="last", kind="stable")
    return summary.drop(columns="_confirmed").reset_index(drop=True)


def _selection_ranks(rows: list[dict], done: pd.DataFrame) -> dict[str, int]:
    """Each selected-on candidate's rank by the run seed's val top-1, ties broken by the run's seed
    (:func:`ablate.analysis.selection.selection_key`)."""
    own = done[done["phase"].isin(SEARCH_PHASES)]
    seed = int(own["seed"].mode().iloc[0]) if len(own) else 0
    ranked = sorted((r for r in rows if r["kind"] == Kind.CANDIDATE and math.isfinite(r["selection_val_top1"])),
                    key=lambda r: selection_key(seed, r["selection_val_top1"], r["config"]))
    return {r["name"]: rank for rank, r in enumerate(ranked, 1)}


def _summary_row(kind: str, name: str, group: pd.DataFrame, axes: list[str], evidence: Evidence,
                 split: str) -> dict:
    first = group.iloc[0]
    phases = set(group["phase"].astype(str))
    seeds = sorted(s for s in group["seed"].unique() if s != NO_SEED)
    own = group[group["phase"].isin(SEARCH_PHASES)]
    confirm = group[group["phase"].isin(EVIDENCE_PHASES)]
    where = EvidenceKind.CONFIRMED if len(confirm) else EvidenceKind.RUN_SEED
    accuracy = evidence.accuracy(name, where)
    if not math.isfinite(accuracy.estimate):  # no per-image record: the rows' plain mean, without an interval
        accuracy = Estimate(float((confirm if len(confirm) else own if len(own) else group)[f"{split}_top1"].mean()),
                            math.nan, math.nan, math.nan, math.nan, math.nan, (), 0)
    row = {"kind": kind, "name": name, "config": first.get("config", name), ALIASES: first.get(ALIASES, ""),
           **{a: first[a] for a in axes},
           "phases": "+".join(p for p in PHASES if p in phases), "n": len(group["seed"].unique()),
           "seeds": ",".join(str(s) for s in seeds),
           "selection_val_top1": float(own["val_top1"].mean()) if len(own) else math.nan,
           "n_confirm": int(confirm["seed"].nunique()), "evidence": where,
           "test_top1_mean": accuracy.estimate, "test_top1_se": accuracy.se, "test_top1_ci_low": accuracy.low,
           "test_top1_ci_high": accuracy.high, "val_top1_mean": float(group["val_top1"].mean()),
           "epochs": pd.to_numeric(group["epochs"], errors="coerce").max() if "epochs" in group else math.nan}
    for cost in COST_COLUMNS:
        row[cost] = pd.to_numeric(group[cost], errors="coerce").mean() if cost in group else math.nan
    uncounted = group["uncounted_ops"].dropna().astype(str) if "uncounted_ops" in group else pd.Series(dtype=str)
    row["uncounted_ops"] = next((u for u in uncounted if u), "")  # one model, so every seed counts the same ops
    row.update(_symmetry(group))
    return row


def _comparisons(row: dict, means: dict, evidence: Evidence, reference: str, front: pd.DataFrame) -> dict:
    """Δ vs the reference baseline and vs the best baseline costing no more, on the config's evidence group."""
    out = _columns("delta", paired(evidence, means, row, reference)) if row["name"] != reference else {}
    if row["kind"] == Kind.CANDIDATE:
        matched = cost_matched_baseline(row["macs"], front)
        out["equal_macs_baseline"] = matched if matched else (CHEAPER if len(front) else None)
        if matched:
            out.update(_columns("delta_equal_macs", paired(evidence, means, row, matched)))
    return out


def paired(evidence: Evidence, means: dict, row: dict, b: str) -> Estimate:
    """Δ top-1 of ``row``'s config − baseline ``b``, each on its own evidence group — the numbers the summary shows
    for them (a config seen under the run seed only against the baseline's fresh-seed mean, when it has them) —
    paired by image; without a per-image record for both, the plain difference of those means and no interval."""
    if b not in means:
        return MISSING
    group, group_b = row["evidence"], means[b][1]
    if evidence.has(row["name"], group) and evidence.has(b, group_b):
        return evidence.difference(row["name"], b, group, group_b)
    return Estimate(row["test_top1_mean"] - means[b][0], math.nan, math.nan, math.nan, math.nan, math.nan, (), 0)


def _columns(prefix: str, estimate: Estimate) -> dict[str, float]:
    mean = prefix if prefix == "delta_equal_macs" else f"{prefix}_mean"
    return {mean: estimate.estimate, f"{prefix}_ci_low": estimate.low, f"{prefix}_ci_high": estimate.high,
            f"{prefix}_p": estimate.p_value}


def _symmetry(group: pd.DataFrame) -> dict:
    """The largest symmetry gap over a config's seeds, and whether every seed's model kept its logits."""
    if "symmetry_gap" not in group or "symmetric" not in group or group["symmetric"].isna().all():
        return {"symmetry_gap": math.nan, "symmetric": None}
    known = group["symmetric"].dropna()
    return {"symmetry_gap": pd.to_numeric(group["symmetry_gap"], errors="coerce").max(),
            "symmetric": bool(known.astype(bool).all())}

