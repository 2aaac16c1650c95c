"""The report's words: the note under the answers table, the Verdicts section (one Holm-adjusted family) and the
descriptive Findings.

A verdict — "`X` is better than `Y`" — is only ever said of a comparison in the family
(:func:`ablate.analysis.verdict_family`) whose adjusted p is below α, with what the winner costs; every other
comparison of the family is "no clear difference" in the answers table, with the smallest difference it could have
detected. Findings describe what the verdicts do
not judge (the selection, configs seen under one seed, early-stopping fidelity) and never say "better".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ablate.analysis import CHEAPER, best_candidate, noise_floor, rung_fidelity
from ablate.analysis.evidence import METHOD as INTERVAL_METHOD
from ablate.analysis.verdicts import KINDS
from ablate.core.schema import EvidenceKind, Kind, VerdictKind, of_kind
from ablate.report.data import COST_LABELS, EVIDENCE_SPLIT, Run, cost_unit, fmt
from ablate.report.tables import RATIO_COSTS, cost_ratio
from ablate.report.text import in_progress

POWER_ADVICE = ("to detect smaller ones, add configs (axis effects), fresh seeds (`--seeds`) or a larger evaluation "
                "split (every comparison)")


def p_text(p: float, what: str = "p") -> str:
    """A p-value for a sentence: two significant digits, or "p < 0.001" ("not tested" when there is none)."""
    if not math.isfinite(p):
        return f"{what}: not tested"
    return f"{what} < 0.001" if p < 0.001 else f"{what} = {p:.2g}"


def interval_text(low: float, high: float, signed: bool = True) -> str:
    """``95 % CI [low, high]``, or "no interval" when the evidence gives none (no per-image record, no seed noise
    measured): a report never prints NaN."""
    if not all(isinstance(v, (int, float, np.floating)) and math.isfinite(v) for v in (low, high)):
        return "no interval (no per-image record or seed noise to build one)"
    spec = "{:+.2f}" if signed else "{:.2f}"
    return f"95 % CI [{fmt(low, spec)}, {fmt(high, spec)}]"


def _subject(row) -> str:
    """What a family comparison is, in words."""
    if row.kind == VerdictKind.ABLATION:
        return (f"{row.change} at the reference `{row.b}` ({row.n_a} vs {row.n_b} seeds × {int(row.n_images)} "
                f"{EVIDENCE_SPLIT} images, paired)")
    if row.kind == VerdictKind.REFERENCE:
        return (f"reference `{row.a}` vs {row.b} ({row.n_a} vs {row.n_b} seeds × {int(row.n_images)} "
                f"{EVIDENCE_SPLIT} images, paired)")
    if row.kind == VerdictKind.EFFECT:
        return (f"{row.axis}: `{row.a}` vs `{row.b}` (reference; on average over the other axes' settings: "
                f"{row.n_a} matched pairs of run-seed models, t over the pairs)")
    seeds = f"{row.n_a} vs {row.n_b} fresh seeds × {int(row.n_images)} {EVIDENCE_SPLIT} images"
    if row.kind == VerdictKind.EQUAL_MACS:
        return f"`{row.a}` vs {row.b}, the best baseline costing no more MACs ({seeds})"
    return f"best candidate `{row.a}` vs {row.b} ({seeds})"


def verdict_lines(run: Run) -> list[str]:
    """The Verdicts section: how many comparisons show a clear difference, each verdict with its cost ratios, then
    the family, the noise floor and the smallest detectable differences (the answers table holds every comparison)."""
    family = run.verdicts
    m = family.attrs.get("family_size", 0)
    if not m:
        return [no_family(run), noise_sentence(run)]
    better, unclear = [], []
    for row in family.itertuples(index=False):
        if not math.isfinite(row.estimate):
            continue
        numbers = (f"{row.estimate:+.2f} pp {EVIDENCE_SPLIT} top-1, {interval_text(row.ci_low, row.ci_high)}, "
                   f"{p_text(row.p_adjusted, 'Holm-adjusted p')}")
        if isinstance(row.better, str):
            loser = row.b if row.better == row.a else row.a
            better.append(f"`{row.better}` is better than `{loser}` — {_subject(row)}: {numbers}{_costs(run, row)}.")
        else:
            unclear.append(row)
    kinds = family["kind"].value_counts()
    summary = ", ".join(f"{kinds[k]} {KINDS[k]}{'s' if kinds[k] != 1 and k != 'equal_macs' else ''}"
                        for k in KINDS if k in kinds)
    rest = (f"the {'other ' if better else ''}{len(unclear)} {'is' if len(unclear) == 1 else 'are'} \"no clear "
            "difference\" in the answers table, each with the difference it could have detected" if unclear else "")
    head = [f"{len(better)} of {m} comparisons show a clear difference" + (f"; {rest}." if rest else ".") if better
            else f"None of the {m} comparisons shows a clear difference" + (f": {rest}." if rest else ".")]
    family_line = (f"Family: {m} comparisons ({summary}), adjusted together with {family.attrs['method']}'s "
                   f"step-down at α = {family.attrs['alpha']:g} (statsmodels multipletests), so the chance of any "
                   f"false \"is better\" in this report is at most {family.attrs['alpha']:.0%}; intervals are "
                   f"unadjusted 95 %. Comparisons of models use seeds nothing selected on (the fresh confirmation "
                   f"seeds, or every seed of an ablation) and the {EVIDENCE_SPLIT} split; their intervals: "
                   f"{INTERVAL_METHOD}.")
    return head + better + [family_line, noise_sentence(run), detectable_sentence(run)]


def _costs(run: Run, row) -> str:
    """What a verdict costs: the first side's MACs and latency over the second's."""
    ratios = {label: cost_ratio(run, row, column) for column, label in RATIO_COSTS.items()}
    parts = [f"{ratio:.2f}× the {label}" for label, ratio in ratios.items() if math.isfinite(ratio)]
    pairs = " (geometric mean over its matched pairs)" if row.kind == VerdictKind.EFFECT else ""
    return f"; `{row.a}` costs {' and '.join(parts)} of `{row.b}`{pairs}" if parts else ""


def no_family(run: Run) -> str:
    cands = int((run.summary["kind"] == Kind.CANDIDATE).sum())
    return (f"No verdict-bearing comparison: no axis effect is estimable from {cands} candidate configs and no "
            "candidate was confirmed under fresh seeds (`--confirm K --seeds S`), so this report draws no "
            "conclusion; the tables below are descriptive.")


def _noise(run: Run):
    """The run's noise floor (:func:`ablate.analysis.noise_floor`) on the evidence split."""
    n_images = run.split_size(EVIDENCE_SPLIT) or run.evidence.n_images() or None
    return noise_floor(run.trials, n_images, f"{EVIDENCE_SPLIT}_top1")


def answers_note(run: Run) -> str:
    """The method and the noise floor in a few lines, under the answers table."""
    family, noise = run.verdicts, _noise(run)
    floor = [f"{noise.binomial_se:.2f} pp from the finite {EVIDENCE_SPLIT} set ({noise.n_images} images)"
             if noise.n_images else "", f"{noise.seed_std:.2f} pp from its training seed" if noise.seed_configs else ""]
    floor = " and ".join(f for f in floor if f)
    status = "".join(f"{line}. " for line in in_progress(run))  # a partial run's answers are provisional
    return (status + "Method: each row compares its first side with its second on the "
            f"{EVIDENCE_SPLIT} split, under seeds "
            f"nothing selected on; Δ is in pp of {EVIDENCE_SPLIT} top-1, paired image by image, with a 95 % interval "
            f"over seeds and images; the {family.attrs.get('family_size', 0)} rows are one Holm family "
            f"(α = {family.attrs.get('alpha', 0.05):g}), so \"better\" or \"worse\" is said only where the adjusted "
            "p is below α; \"detectable\" is the difference the row would find with 80 % power; a cost ratio is the "
            "first side's cost over the second's (an axis effect: the geometric mean over its matched pairs). "
            + (f"Noise floor: one model's {EVIDENCE_SPLIT} top-1 moves by about {floor}. " if floor else "")
            + "Details in Verdicts.")


def noise_sentence(run: Run) -> str:
    """The noise floor: the binomial SE of the evaluation split and the seed-to-seed std, stated as noise."""
    noise = _noise(run)
    binomial = (f"binomial SE of {EVIDENCE_SPLIT} top-1 at the mean {noise.accuracy:.1f} % over {noise.n_images} "
                f"{EVIDENCE_SPLIT} images: {noise.binomial_se:.2f} pp" if noise.n_images else
                f"binomial SE of {EVIDENCE_SPLIT} top-1: unknown "
                f"(run.json gives no size of the {EVIDENCE_SPLIT} split)")
    seeds = (f"seed-to-seed std of {EVIDENCE_SPLIT} top-1 over the fresh confirmation seeds: {noise.seed_std:.2f} pp "
             f"(pooled over {noise.seed_configs} config{'s' if noise.seed_configs != 1 else ''}, "
             f"n = {noise.seed_rows} models, {noise.seed_df} df)" if noise.seed_configs else
             "seed-to-seed std: not measured (no config was trained under 2 or more fresh seeds)")
    return (f"Noise floor: {binomial}; {seeds}. Either alone moves a single model's top-1 by about this much, so a "
            "difference of that size is indistinguishable from noise; whether a larger one is evidence is what each "
            "comparison's interval and adjusted p say.")


def detectable_sentence(run: Run) -> str:
    """The smallest difference each kind of comparison could detect (80 % power at α / m), and what would help."""
    family = run.verdicts
    m = family.attrs.get("family_size", 0)
    by_kind = family.dropna(subset=["detectable"]).groupby("kind")["detectable"].median()
    parts = "; ".join(f"{KINDS[k]} ≈ {by_kind[k]:.1f} pp" for k in KINDS if k in by_kind)
    return (f"Smallest difference this run could detect (80 % power, two-sided, α = {family.attrs['alpha']:g}/{m} "
            f"per comparison, from its own noise and n; median per kind): {parts or '—'}; {POWER_ADVICE}."
            + _planned_text(run, by_kind))


def _planned_text(run: Run, achieved) -> str:
    """What the run's plan promised (run.json ``plan``) against what it achieved: time and detectable differences."""
    plan = run.meta.get("plan")
    if not isinstance(plan, dict) or not plan.get("detectable"):
        return ""
    kinds = {label: kind for kind, label in KINDS.items()}
    pairs = "; ".join(f"{label} {planned:.1f} → {achieved[kinds[label]]:.1f} pp"
                      for label, planned in plan["detectable"].items()
                      if label in kinds and kinds[label] in achieved)
    minutes = run.meta.get("wall_seconds")
    took = f"{minutes / 60:.1f} min" if isinstance(minutes, (int, float)) and run.meta.get("finished") else \
        "— (the run has not finished)"
    return (f" Planned before training ({plan.get('design')}, noise from {plan.get('noise')}): ≈ "
            f"{plan.get('minutes', math.nan):.1f} min → took {took}; detectable, planned → achieved: {pairs or '—'}.")


def findings(run: Run) -> list[str]:
    """Descriptive sentences: the selection and its best candidate, effects that could not be estimated, the
    cheapest Pareto-optimal candidate, and (search runs) how well epoch 1 predicts the final ranking."""
    return (_selection_sentences(run) + _settings_sentences(run) + _shares_sentences(run) + _not_estimable(run)
            + [_cheapest_sentence(run)] + _fidelity_sentences(run))


def _settings_sentences(run: Run) -> list[str]:
    """Main effects whose per-setting Δs disagree beyond their own noise: where the axis helps and where not."""
    table = run.effects
    if "settings" not in table:
        return []
    return [f"{row.axis}: `{row.choice}` vs `{row.reference}` differs from setting to setting (Cochran's Q, "
            f"{p_text(row.heterogeneity_p)}), so its average hides where it helps; Δ (pp) per setting of the other "
            f"axes: {row.settings}."
            for row in table.itertuples(index=False) if row.estimable and row.settings]


def _shares_sentences(run: Run) -> list[str]:
    """Which axis matters: shares of the config-to-config variance, largest first, with intervals."""
    shares = run.shares
    if shares.empty:
        return []
    ordered = pd.concat([shares[shares["term"] != "residual"].sort_values("share", ascending=False),
                         shares[shares["term"] == "residual"]])
    parts = "; ".join(f"{row.term} {row.share:.0f} % [{row.ci_low:.0f}, {row.ci_high:.0f}]"
                      for row in ordered.itertuples(index=False))
    return [f"Which axis matters — share of the variance of {EVIDENCE_SPLIT} top-1 across the "
            f"{len(of_kind(run.summary, Kind.CANDIDATE))} configs (ANOVA, type II sums of squares, one run-seed "
            f"model per config; 95 % intervals from resampling the {EVIDENCE_SPLIT} images): {parts}."]


def _selection_sentences(run: Run) -> list[str]:
    summary = run.summary
    cands = of_kind(summary, Kind.CANDIDATE).dropna(subset=["selection_val_top1"])
    if cands.empty:
        return []
    top = cands.sort_values("selection_rank").iloc[0]
    first = (f"Selection: the design ranked {len(cands)} candidate configs by the run seed's val top-1; "
             f"`{top['name']}` came first at {fmt(top['selection_val_top1'])} % — the best of {len(cands)}, so that "
             "number is optimistic and judges nothing.")
    best = best_candidate(summary)
    if best is None:
        return [first + " No candidate was retrained under fresh seeds (`--confirm 0`): no candidate is judged."]
    judged = (f" Confirmed: `{best['name']}` reaches {fmt(best['test_top1_mean'])} % {EVIDENCE_SPLIT} top-1 over "
              f"{int(best['n_confirm'])} fresh seeds "
              f"({interval_text(best['test_top1_ci_low'], best['test_top1_ci_high'], signed=False)}), "
              f"{fmt(best['test_top1_mean'] - best['selection_val_top1'], '{:+.2f}')} pp from its selection number.")
    return [first + judged]


def _not_estimable(run: Run) -> list[str]:
    table = run.effects
    return [f"{row.axis}: `{row.choice}` vs `{row.reference}`: not estimable — {row.reason}."
            for row in table.itertuples(index=False) if not row.estimable]


def _cheapest_sentence(run: Run) -> str:
    """The lowest-cost candidate on the Pareto front of the evidence top-1: what the cheapest sensible choice keeps."""
    summary = run.summary
    front = summary[run.front & (summary["kind"] == Kind.CANDIDATE)]
    scale, unit = cost_unit(run.cost, run.trials[run.cost])
    label = COST_LABELS[run.cost]
    if front.empty:
        return (f"No candidate is on the {EVIDENCE_SPLIT} top-1 vs {label} Pareto front (0 of "
                f"{int((summary['kind'] == Kind.CANDIDATE).sum())} candidate configs).")
    cheap = front.loc[front[run.cost].idxmin()]
    seeds = (f"{int(cheap['n_confirm'])} fresh seeds" if cheap["evidence"] == EvidenceKind.CONFIRMED
             else "the run seed only (descriptive: it was not confirmed, so no verdict)")
    matched = cheap["equal_macs_baseline"]
    if isinstance(matched, str) and matched != CHEAPER and math.isfinite(cheap["delta_equal_macs"]):
        at_equal = (f"; vs {matched}, the best baseline costing no more: {cheap['delta_equal_macs']:+.2f} pp "
                    f"({interval_text(cheap['delta_equal_macs_ci_low'], cheap['delta_equal_macs_ci_high'])})")
    else:
        at_equal = f"; {CHEAPER}" if matched == CHEAPER else ""
    return (f"Cheapest Pareto-optimal candidate: `{cheap['name']}` at {fmt(cheap[run.cost], scale=scale)} {unit} "
            f"{label} with {fmt(cheap['test_top1_mean'])} % {EVIDENCE_SPLIT} top-1 over {seeds}{at_equal}; "
            f"{len(front)} candidate{'s are' if len(front) != 1 else ' is'} on the front.")


def _fidelity_sentences(run: Run) -> list[str]:
    """Kendall τ (with a bootstrap CI) between each design trial's epoch-1 and final val top-1: can early stopping
    be trusted? Design trials are never stopped early, so τ is not restricted to ASHA's survivors."""
    agreement = rung_fidelity(run.curves, run.trials, rung=1)
    if agreement.n >= 3 and math.isfinite(agreement.kendall_tau):
        ci = (f", bootstrap {interval_text(agreement.tau_ci_low, agreement.tau_ci_high)}"
              if np.isfinite([agreement.tau_ci_low, agreement.tau_ci_high]).all() else "")
        return [f"Early stopping: Kendall τ between epoch-1 and final val top-1 of the {agreement.n} design trials "
                f"(trained to the full budget) = {agreement.kendall_tau:+.2f}{ci} ({p_text(agreement.kendall_p)}); "
                f"Spearman ρ = {agreement.spearman_rho:+.2f}; top-{agreement.top_k} overlap "
                f"{agreement.top_k_overlap} of {agreement.top_k}."]
    return []
