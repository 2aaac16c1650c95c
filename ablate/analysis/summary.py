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
    rows = _config_rows(done, axes, evidence, split)
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


def _config_rows(done: pd.DataFrame, axes: list[str], evidence: Evidence, split: str) -> list[dict]:
    """One dict per config (``kind``, ``name``, in table order): every column aggregated over one grouping of the
    whole table, not by slicing each config's rows out of it (a 36-config report spent half its analysis there)."""
    phase = done["phase"].astype(str)
    own, confirm = phase.isin(SEARCH_PHASES), phase.isin(EVIDENCE_PHASES)
    top1, seed = done[f"{split}_top1"], done["seed"]
    values = {  # column → (values, aggregation)
        **{p: (phase == p, "any") for p in PHASES},
        "n": (seed, "nunique"), "n_confirm": (seed.where(confirm), "nunique"),
        "selection_val_top1": (done["val_top1"].where(own), "mean"), "val_top1_mean": (done["val_top1"], "mean"),
        # the rows' plain top-1 means, for a config without a per-image record
        "plain_confirm": (top1.where(confirm), "mean"), "plain_own": (top1.where(own), "mean"),
        "plain_all": (top1, "mean"),
        **{c: (pd.to_numeric(done[c], errors="coerce"), "max" if c == "epochs" else "mean")
           for c in (*COST_COLUMNS, "epochs") if c in done},
    }
    if "uncounted_ops" in done:  # one model, so every seed counts the same ops: the first non-empty list
        named = done["uncounted_ops"].map(lambda u: str(u) if pd.notna(u) else "")
        values["uncounted_ops"] = (named.where(named != ""), "first")
    if "symmetry_gap" in done and "symmetric" in done:  # the largest gap, and whether every model kept its logits
        known = done["symmetric"].notna()
        values.update(checked=(known, "any"), symmetric=(done["symmetric"].where(known, True).astype(bool), "all"),
                      symmetry_gap=(pd.to_numeric(done["symmetry_gap"], errors="coerce"), "max"))
    frame = pd.DataFrame({c: v for c, (v, _) in values.items()}).assign(_seed=seed.where(seed != NO_SEED))
    grouped = frame.groupby([done["kind"], done["name"]], sort=False)
    table = grouped.agg({c: how for c, (_, how) in values.items()})
    seeds = grouped["_seed"].agg(lambda s: ",".join(str(int(v)) for v in sorted(s.dropna().unique())))
    origins = {(r["kind"], r["name"]): r for r in done.drop_duplicates(["kind", "name"]).to_dict("records")}
    rows = []
    for (kind, name), c, seed_list in zip(table.index, table.to_dict("records"), seeds):
        confirmed, own_seed = any(c[p] for p in EVIDENCE_PHASES), any(c[p] for p in SEARCH_PHASES)
        where = EvidenceKind.CONFIRMED if confirmed else EvidenceKind.RUN_SEED
        accuracy = evidence.accuracy(name, where)
        if not math.isfinite(accuracy.estimate):  # no per-image record: the rows' plain mean, without an interval
            plain = c["plain_confirm"] if confirmed else c["plain_own"] if own_seed else c["plain_all"]
            accuracy = Estimate(float(plain), math.nan, math.nan, math.nan, math.nan, math.nan, (), 0)
        origin, checked = origins[(kind, name)], c.get("checked", False)
        rows.append({
            "kind": kind, "name": name, "config": origin.get("config", name), ALIASES: origin.get(ALIASES, ""),
            **{a: origin[a] for a in axes},
            "phases": "+".join(p for p in PHASES if c[p]), "n": int(c["n"]), "seeds": seed_list,
            "selection_val_top1": float(c["selection_val_top1"]), "n_confirm": int(c["n_confirm"]), "evidence": where,
            "test_top1_mean": accuracy.estimate, "test_top1_se": accuracy.se, "test_top1_ci_low": accuracy.low,
            "test_top1_ci_high": accuracy.high, "val_top1_mean": float(c["val_top1_mean"]),
            "epochs": c.get("epochs", math.nan), **{cost: c.get(cost, math.nan) for cost in COST_COLUMNS},
            "uncounted_ops": c["uncounted_ops"] if isinstance(c.get("uncounted_ops"), str) else "",
            "symmetry_gap": c["symmetry_gap"] if checked else math.nan,
            "symmetric": bool(c["symmetric"]) if checked else None,
        })
    return rows


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
