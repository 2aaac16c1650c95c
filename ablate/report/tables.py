"""The report's tables: the measured leaderboard, the unfinished trials and the papers' published numbers."""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np
import pandas as pd

from ablate.pareto import pareto_mask
from ablate.report.data import MISSING, REFERENCE, Run, cost_unit, fmt, strip_urls


def leaderboard(run: Run) -> pd.DataFrame:
    """Completed rows (candidates and baselines) by val top-1, with Pareto stars, formatted for display."""
    done = run.completed.assign(pareto=pareto_mask(run.completed, "val_top1", run.cost))
    done = done.sort_values(["val_top1", "name"], ascending=[False, True], na_position="last", kind="stable")
    mscale, munit = cost_unit("macs", run.trials["macs"])
    ref = run.baseline(REFERENCE)
    delta = done["val_top1"] - ref["val_top1"] if ref is not None else done["delta_top1"]
    table = pd.DataFrame({
        "pareto": np.where(done["pareto"], "★", ""),
        "name": done["name"], "kind": done["kind"], "config": done["config"],
        "val top-1 (%)": done["val_top1"].map(fmt), "test top-1 (%)": done["test_top1"].map(fmt),
        f"Δtop-1 vs {REFERENCE} (pp)": delta.map(lambda v: fmt(v, "{:+.2f}")),
        "params (M)": done["params"].map(lambda v: fmt(v, scale=1e6)),
        f"MACs ({munit})": done["macs"].map(lambda v: fmt(v, scale=mscale)),
        "element-wise ops (M)": done["elementwise_ops"].map(lambda v: fmt(v, scale=1e6)),
        "latency (ms)": done["latency_ms"].map(fmt),
        "throughput (img/s)": done["throughput"].map(lambda v: fmt(v, "{:.0f}")),
        "status": done["status"],
    })
    if "trial_latency_ms" in done and done["trial_latency_ms"].notna().any():  # a latency objective's own number
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
