"""The report's tables: the answers (one row per verdict-bearing comparison, with what it costs), an ablation's
detail, the measured leaderboard (one row per config, from the run's summary) with its costs, the unfinished trials
and the papers' published numbers."""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np
import pandas as pd

from ablate.analysis.axis_effects import choice_label
from ablate.analysis.equal_cost import CHEAPER
from ablate.core.schema import REFERENCE_BASELINE, EvidenceKind, Kind, Status, VerdictKind, of_kind
from ablate.report.data import MISSING, Run, cost_unit, fmt, fmt_ci, strip_urls


def leaderboard(run: Run) -> pd.DataFrame:
    """One row per completed config, accuracy with intervals (fits a laptop screen; costs: :func:`cost_table`).

    Selection number (run seed's val top-1), then the evidence: test top-1 with its 95 % interval and seeds, the
    paired Δ vs ResNet50 and Δ at equal MACs with theirs, and Pareto stars over evidence top-1 vs the run's cost.
    """
    done = run.summary
    star = run.front
    seeds = [f"{int(n)} fresh" if kind == EvidenceKind.CONFIRMED else "1 (run seed)"
             for kind, n in zip(done["evidence"], done["n_confirm"])]
    equal = [(matched if matched == CHEAPER else f"{_with_ci(d, lo, hi)} vs {matched}")
             if kind == Kind.CANDIDATE and isinstance(matched, str) else MISSING
             for kind, matched, d, lo, hi in zip(done["kind"], done["equal_macs_baseline"], done["delta_equal_macs"],
                                                 done["delta_equal_macs_ci_low"], done["delta_equal_macs_ci_high"])]
    return pd.DataFrame({
        "pareto": np.where(star, "★", ""), "name": done["name"], "kind": done["kind"],
        "selection: val top-1 (%)": done["selection_val_top1"].map(fmt),
        "seeds": seeds,
        "test top-1 (%)": done["test_top1_mean"].map(fmt),
        "test 95 % CI": [fmt_ci(lo, hi) for lo, hi in zip(done["test_top1_ci_low"], done["test_top1_ci_high"])],
        f"Δ vs {REFERENCE_BASELINE} (pp)": [MISSING if name == REFERENCE_BASELINE else _with_ci(d, lo, hi)
                                   for name, d, lo, hi in zip(done["name"], done["delta_mean"], done["delta_ci_low"],
                                                              done["delta_ci_high"])],
        "Δ at equal MACs (pp)": equal,
    })


ANSWERS = {True: "better", False: "worse", None: "no clear difference"}


def answer(row) -> str:
    """A family row's answer for its first side ``a`` against ``b``: better, worse or no clear difference."""
    return ANSWERS[None] if not isinstance(row.better, str) else ANSWERS[row.better == row.a]


def question(row) -> str:
    """A family row as the question it answers, first side first (the answer and Δ are the first side's)."""
    if row.kind == VerdictKind.ABLATION:
        return f"{row.a} vs reference ({row.change})"
    if row.kind == VerdictKind.REFERENCE:
        return f"reference {row.a} vs {row.b}"
    if row.kind == VerdictKind.EFFECT:
        return f"{row.axis} {row.a} vs {row.b} (axis effect, {row.n_a} matched pairs)"
    if row.kind == VerdictKind.EQUAL_MACS:
        return f"{row.a} vs {row.b} (the best baseline costing no more MACs)"
    return f"best candidate {row.a} vs {row.b}"


RATIO_COSTS = {"macs": "MACs", "latency_ms": "latency"}


def answers_table(run: Run) -> pd.DataFrame:
    """The report's first table: one row per verdict-bearing comparison of the Holm family — the question, the
    answer, Δ top-1 with its 95 % interval, the adjusted p, the difference it could detect, and what the answer
    costs: the first side's MACs and latency over the second's (an axis effect: the geometric mean of those ratios
    over its matched pairs)."""
    rows = run.verdicts[np.isfinite(run.verdicts["p_value"].astype(float))]
    table = pd.DataFrame({
        "question": [question(r) for r in rows.itertuples()],
        "answer": [answer(r) for r in rows.itertuples()],
        "Δ test top-1 (pp) [95 % CI]": [_with_ci(r.estimate, r.ci_low, r.ci_high) for r in rows.itertuples()],
        "Holm p": [_p(p) for p in rows["p_adjusted"]],
        "detectable (pp)": [fmt(d, "{:.1f}") for d in rows["detectable"]],
    })
    for column, label in RATIO_COSTS.items():
        table[f"{label} ratio"] = [fmt(cost_ratio(run, r, column), "{:.2f}×") for r in rows.itertuples()]
    return table


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else fmt(p, "{:.2g}")


def cost_ratio(run: Run, row, column: str) -> float:
    """A family row's cost ratio, first side over second: the two configs' mean costs, or for an axis effect the
    geometric mean over its matched pairs (candidate configs equal in every other design axis)."""
    summary = run.summary
    if column not in summary:
        return np.nan
    if row.kind != VerdictKind.EFFECT:
        cost = summary.set_index("name")[column]
        return float(cost.get(row.a, np.nan) / cost.get(row.b, np.nan))
    others = [a for a in run.design_axes if a != row.axis and a in summary]
    configs = of_kind(summary, Kind.CANDIDATE)
    labels = configs[[row.axis, *others]].map(choice_label).assign(cost=configs[column].astype(float))
    pairs = labels[labels[row.axis] == row.a].merge(labels[labels[row.axis] == row.b], on=others)
    ratios = (pairs["cost_x"] / pairs["cost_y"]).to_numpy(dtype=float)
    ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
    return float(np.exp(np.log(ratios).mean())) if len(ratios) else np.nan


def ablation_table(run: Run) -> pd.DataFrame:
    """The paper's ablation table, in detail: the reference, one row per variant (what changed from the reference),
    then the reference vs each baseline; each row's model's test top-1, its Δ with its interval and its absolute
    costs (params, MACs, element-wise ops, latency). The answers and their p are in :func:`answers_table`."""
    family = run.verdicts
    rows = family[family["kind"].isin([VerdictKind.ABLATION, VerdictKind.REFERENCE])]
    costs = run.summary.set_index("name")
    mscale, munit = cost_unit("macs", run.trials["macs"])

    def cost(name: str, column: str, scale: float = 1.0, spec: str = "{:.2f}") -> str:
        return fmt(costs[column].get(name, np.nan), spec, scale) if column in costs else MISSING

    reference = rows["b"].iloc[0] if (rows["kind"] == VerdictKind.ABLATION).any() else \
        (rows["a"].iloc[0] if len(rows) else None)
    subject = [reference] + [row.a if row.kind == VerdictKind.ABLATION else row.b for row in rows.itertuples()]
    return pd.DataFrame({
        "comparison": ["reference"] + [f"{row.change}" if row.kind == VerdictKind.ABLATION else f"reference vs {row.b}"
                                       for row in rows.itertuples()],
        "model": subject,
        "test top-1 (%)": [cost(n, "test_top1_mean") for n in subject],
        "Δ top-1 (pp)": [MISSING] + [_with_ci(r.estimate, r.ci_low, r.ci_high) for r in rows.itertuples()],
        "params (M)": [cost(n, "params", 1e6) for n in subject],
        f"MACs ({munit})": [cost(n, "macs", mscale) for n in subject],
        "element-wise ops (M)": [cost(n, "elementwise_ops", 1e6) for n in subject],
        "latency (ms)": [cost(n, "latency_ms") for n in subject],
    })


def _with_ci(value, low, high) -> str:
    """A signed difference with its interval, or alone when it has none."""
    ci = fmt_ci(low, high, "{:+.2f}")
    return fmt(value, "{:+.2f}") + ("" if ci == MISSING else f" {ci}")


def cost_table(run: Run) -> pd.DataFrame:
    """The same configs' costs: params, MACs, element-wise ops, latency, throughput (and the symmetry check)."""
    done = run.summary
    mscale, munit = cost_unit("macs", run.trials["macs"])
    table = pd.DataFrame({
        "name": done["name"], "config": done["config"],
        "params (M)": done["params"].map(lambda v: fmt(v, scale=1e6)),
        f"MACs ({munit})": done["macs"].map(lambda v: fmt(v, scale=mscale)),
        "element-wise ops (M)": done["elementwise_ops"].map(lambda v: fmt(v, scale=1e6)),
        "latency (ms)": done["latency_ms"].map(fmt),
        "throughput (img/s)": done["throughput"].map(lambda v: fmt(v, "{:.0f}")),
    })
    if done["trial_latency_ms"].notna().any():  # a latency objective's own number
        table.insert(table.columns.get_loc("latency (ms)") + 1, "in-trial latency (ms)",
                     done["trial_latency_ms"].map(fmt))
    uncounted = done["uncounted_ops"].fillna("").astype(str)
    if (uncounted != "").any():  # ops fvcore cannot count: the counts are lower bounds
        table["uncounted ops"] = uncounted.map(lambda u: u or MISSING)
    if "symmetric" in done and done["symmetric"].notna().any():  # QLNet's property, measured on the trained weights
        table["symmetric"] = done["symmetric"].map(lambda v: MISSING if v is None or v != v else ("yes" if v else "no"))
        table["symmetry gap"] = done["symmetry_gap"].map(lambda v: fmt(v, "{:.1e}"))
    return table


def unfinished_table(run: Run) -> pd.DataFrame:
    """Pruned and failed rows with what explains them: epochs reached, last val top-1, failure reason."""
    rest = run.trials[run.trials["status"] != Status.COMPLETED].sort_values(["status", "name"], kind="stable")
    return pd.DataFrame({
        "name": rest["name"], "kind": rest["kind"], "status": rest["status"],
        "epochs": rest["epochs"].map(lambda v: fmt(v, "{:.0f}")),
        "last val top-1 (%)": rest["val_top1"].map(fmt),
        "reason": rest["reason"].map(lambda r: strip_urls(r.strip().split("\n")[0])[:200] or MISSING),
    })


def published_table() -> pd.DataFrame | None:
    """The papers' numbers shipped with the package, with links removed (the report must stay offline)."""
    source = resources.files("ablate") / "resources" / "published_results.csv"
    if not source.is_file():
        return None
    header, *rows = list(csv.reader(source.read_text(encoding="utf-8").splitlines()))
    pub = pd.DataFrame([_fold_extra_fields(row, len(header)) for row in rows if row], columns=header)
    pub["source"] = pub["source"].map(strip_urls)
    return pub.rename(columns={"params_m": "params (M)", "macs_g": "MACs (G)", "gpu_latency_ms": "GPU latency (ms)",
                               "top1": "top-1 (%)", "top5": "top-5 (%)", "input": "input (px)"}).replace("", MISSING)


def _fold_extra_fields(row: list[str], width: int) -> list[str]:
    """Unquoted commas in the free-text last column (the source) split it; join them back instead of failing."""
    return row[: width - 1] + [",".join(row[width - 1:])] if len(row) > width else row + [""] * (width - len(row))
