"""The report's tables: the measured leaderboard (one row per config, from the run's summary), the unfinished
trials and the papers' published numbers."""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np
import pandas as pd

from ablate.analysis.equal_cost import baseline_front, in_front_range
from ablate.pareto import pareto_mask
from ablate.report.data import MISSING, REFERENCE, Run, cost_unit, fmt, fmt_ci, strip_urls


def leaderboard(run: Run) -> pd.DataFrame:
    """One row per completed config (candidates and baselines) by mean val top-1, formatted for display.

    Mean val top-1 with its 95 % t-interval and n seeds, paired Δ vs ResNet50 with its CI, "Δ at equal MACs" (vs the
    baselines' front interpolated in log MACs; "outside range" beyond it), costs, and Pareto stars over the means.
    """
    summary = run.summary
    done = summary.assign(pareto=pareto_mask(summary, "val_top1_mean", run.cost))
    mscale, munit = cost_unit("macs", run.trials["macs"])
    front = baseline_front(summary)
    inside = in_front_range(done["macs"], front["macs"])
    measured = np.isfinite(pd.to_numeric(done["macs"], errors="coerce")) & (len(front) > 0)
    equal_macs = np.where(inside, done["delta_equal_macs"].map(lambda v: fmt(v, "{:+.2f}")),
                          np.where(measured, "outside range", MISSING))
    table = pd.DataFrame({
        "pareto": np.where(done["pareto"], "★", ""),
        "name": done["name"], "kind": done["kind"], "config": done["config"],
        "phase": done["phases"].replace("", MISSING), "n seeds": done["n"].map(lambda v: fmt(v, "{:.0f}")),
        "val top-1 (%)": done["val_top1_mean"].map(fmt),
        "val 95 % CI": [fmt_ci(lo, hi) for lo, hi in zip(done["val_top1_ci_low"], done["val_top1_ci_high"])],
        "test top-1 (%)": done["test_top1_mean"].map(fmt),
        f"Δtop-1 vs {REFERENCE} (pp)": done["delta_mean"].map(lambda v: fmt(v, "{:+.2f}")),
        "Δ 95 % CI": [fmt_ci(lo, hi, "{:+.2f}") for lo, hi in zip(done["delta_ci_low"], done["delta_ci_high"])],
        "Δ at equal MACs (pp)": equal_macs,
        "params (M)": done["params"].map(lambda v: fmt(v, scale=1e6)),
        f"MACs ({munit})": done["macs"].map(lambda v: fmt(v, scale=mscale)),
        "element-wise ops (M)": done["elementwise_ops"].map(lambda v: fmt(v, scale=1e6)),
        "latency (ms)": done["latency_ms"].map(fmt),
        "throughput (img/s)": done["throughput"].map(lambda v: fmt(v, "{:.0f}")),
    })
    if "symmetric" in done and done["symmetric"].notna().any():  # QLNet's property, measured on the trained weights
        table["symmetric"] = done["symmetric"].map(lambda v: MISSING if v is None or v != v else ("yes" if v else "no"))
        table["symmetry gap"] = done["symmetry_gap"].map(lambda v: fmt(v, "{:.1e}"))
    if done["trial_latency_ms"].notna().any():  # a latency objective's own number
        table.insert(table.columns.get_loc("latency (ms)") + 1, "in-trial latency (ms)",
                     done["trial_latency_ms"].map(fmt))
    return table


def unfinished_table(run: Run) -> pd.DataFrame:
    """Pruned and failed rows with what explains them: epochs reached, last val top-1, failure reason."""
    rest = run.trials[run.trials["status"] != "completed"].sort_values(["status", "name"], kind="stable")
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
