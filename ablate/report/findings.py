"""The report's findings: every sentence names the comparison, the estimate, its 95 % CI and n.

A difference whose CI covers 0 is stated as "no clear difference"; with n = 1 there is no CI and the sentence says
so instead of a verdict. Per-axis effects come from the additive OLS (:func:`ablate.analysis.effects`), the best
candidate against each baseline from paired Δs over shared training seeds.
"""

from __future__ import annotations

import math

from ablate.analysis import paired_delta, rung_fidelity
from ablate.analysis.intervals import Interval
from ablate.pareto import pareto_mask
from ablate.report.data import BASELINE_NAMES, COST_LABELS, REFERENCE, Run, cost_unit, fmt

NO_CI = "n = 1 cannot give a CI"


def p_text(p: float) -> str:
    """A p-value for a sentence: two significant digits, or "p < 0.001"."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def findings(run: Run) -> list[str]:
    """Sentences read off the statistics: axis effects, the best candidate vs each baseline, the cheapest
    Pareto-optimal candidate, and (search runs) how well epoch 1 predicts the final ranking."""
    return _effect_sentences(run) + _best_sentences(run) + [_cheapest_sentence(run)] + _fidelity_sentences(run)


def ci_text(interval: Interval, unit: str = " pp", what: str = "seed", signed: bool = True) -> str:
    """``95 % CI [a, b], n = k seeds`` (signed for differences); with one value, that n = 1 cannot give a CI."""
    plural = "" if interval.n == 1 else "s"
    if not interval.has_ci:
        return f"n = {interval.n} {what}{plural}: {NO_CI}" if interval.n == 1 else f"n = {interval.n} {what}{plural}"
    spec = "{:+.2f}" if signed else "{:.2f}"
    return f"95 % CI [{spec.format(interval.low)}, {spec.format(interval.high)}]{unit}, n = {interval.n} {what}{plural}"


def verdict(interval: Interval, higher: str, lower: str) -> str:
    """Who wins a difference ``higher − lower``: a name when the CI excludes 0, else "no clear difference"."""
    if not interval.has_ci:
        return "no verdict without a CI"
    if interval.covers_zero:
        return "no clear difference"
    return f"`{higher if interval.mean > 0 else lower}` is better"


def _effect_sentences(run: Run) -> list[str]:
    table = run.effects
    n_model = table.attrs.get("n_model", len(run.candidates))
    if table.empty:
        return [f"Axis effects: no axis has two choices among the {n_model} completed candidates, so there is no "
                "comparison to make."]
    sentences = []
    for row in table.itertuples(index=False):
        pair = f"`{row.choice}` vs `{row.reference}` (reference)" if row.reference is not None else f"`{row.choice}`"
        counts = f"n = {row.n} vs {row.n_reference} rows" if row.reference is not None else f"n = {row.n} rows"
        if not row.estimable:
            sentences.append(f"{row.axis}: {pair}: not estimable — {row.reason} ({counts}).")
            continue
        interval = Interval(row.estimate, math.nan, row.ci_low, row.ci_high, row.n)
        sentences.append(
            f"{row.axis}: {pair}, additive OLS over {row.n_model} full-budget candidate rows: {row.estimate:+.2f} pp "
            f"val top-1 (95 % CI [{row.ci_low:+.2f}, {row.ci_high:+.2f}], {counts}) — "
            f"{verdict(interval, row.choice, row.reference)}.")
    return sentences


def _best_sentences(run: Run) -> list[str]:
    """The best candidate by mean val top-1, then its paired Δ against every baseline present."""
    summary = run.summary
    cands = summary[(summary["kind"] == "candidate") & summary["val_top1_mean"].notna()]
    if cands.empty:
        return []
    top = cands.iloc[0]
    mean = Interval(top["val_top1_mean"], top["val_top1_std"], top["val_top1_ci_low"], top["val_top1_ci_high"],
                    int(top["n"]))
    interval = ci_text(mean, unit="", signed=False)
    sentences = [f"Best candidate `{top['name']}` reached {fmt(top['val_top1_mean'])} % val top-1 ({interval}); "
                 f"picked as the best of {len(cands)} completed candidate configs, so this estimate is optimistic."]
    for name in BASELINE_NAMES:
        if not (summary["name"] == name).any():
            continue
        delta = paired_delta(run.trials, top["name"], name)
        if delta.n == 0:
            sentences.append(f"`{top['name']}` vs {name}: no training seed where both completed (n = 0), so no "
                             "paired Δ.")
            continue
        sentences.append(f"`{top['name']}` vs {name}: paired Δ {delta.mean:+.2f} pp val top-1 "
                         f"({ci_text(delta, what='paired seed')}) — {verdict(delta, top['name'], name)}.")
    return sentences


def _cheapest_sentence(run: Run) -> str:
    """The lowest-cost candidate on the Pareto front: what accuracy the cheapest sensible choice keeps."""
    summary = run.summary
    front = summary[pareto_mask(summary, "val_top1_mean", run.cost) & (summary["kind"] == "candidate")]
    scale, unit = cost_unit(run.cost, run.trials[run.cost])
    label = COST_LABELS[run.cost]
    if front.empty:
        return (f"No candidate is on the accuracy-vs-{label} Pareto front (0 of "
                f"{int((summary['kind'] == 'candidate').sum())} completed candidate configs).")
    cheap = front.loc[front[run.cost].idxmin()]
    mean = Interval(cheap["val_top1_mean"], math.nan, cheap["val_top1_ci_low"], cheap["val_top1_ci_high"],
                    int(cheap["n"]))
    delta = Interval(cheap["delta_mean"], math.nan, cheap["delta_ci_low"], cheap["delta_ci_high"],
                     int(cheap["delta_n"]))
    versus = (f"; vs {REFERENCE} paired Δ {delta.mean:+.2f} pp ({ci_text(delta, what='paired seed')}) — "
              f"{verdict(delta, cheap['name'], REFERENCE)}" if delta.n else "")
    equal = cheap["delta_equal_macs"]
    at_equal = (f"; Δ at equal MACs {equal:+.2f} pp" if math.isfinite(equal)
                else "; Δ at equal MACs: outside the baselines' MACs range" if math.isfinite(cheap["macs"]) else "")
    return (f"Cheapest Pareto-optimal candidate: `{cheap['name']}` at {fmt(cheap[run.cost], scale=scale)} {unit} "
            f"{label} with {fmt(cheap['val_top1_mean'])} % val top-1 ({ci_text(mean, unit='', signed=False)})"
            f"{versus}{at_equal}; "
            f"{len(front)} candidate{'s are' if len(front) != 1 else ' is'} on the front.")


def _is_search_run(run: Run) -> bool:
    trials = run.trials
    searched = "phase" in trials and bool((trials["phase"] == "search").any())
    return searched or bool((trials["status"] == "pruned").any()) or run.meta.get("design") == "search"


def _fidelity_sentences(run: Run) -> list[str]:
    """Kendall τ between each completed candidate's epoch-1 and final val top-1: can early stopping be trusted?"""
    agreement = rung_fidelity(run.curves, run.trials, rung=1)
    if agreement.n >= 3 and math.isfinite(agreement.kendall_tau):
        return [f"Early stopping: Kendall τ between epoch-1 and final val top-1 of the completed candidates = "
                f"{agreement.kendall_tau:+.2f} ({p_text(agreement.kendall_p)}, n = {agreement.n}); Spearman ρ = "
                f"{agreement.spearman_rho:+.2f} ({p_text(agreement.spearman_p)}); top-{agreement.top_k} overlap "
                f"{agreement.top_k_overlap} of {agreement.top_k}."]
    if not _is_search_run(run):
        return []
    return [f"Early stopping: no rank correlation — {agreement.n} completed candidates have both an epoch-1 and a "
            "later final val top-1 in curves.parquet with differing values (needs ≥ 3)."]
