"""The report's figures, as PNG files; each decides by itself whether the run has enough data for it."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ablate.analysis.edf import MIN_ROWS_PER_CHOICE, edf_counts, error_edf  # noqa: E402
from ablate.models.baselines import BASELINE_NAMES  # noqa: E402
from ablate.pareto import pareto_front  # noqa: E402
from ablate.report.data import COST_LABELS, Figure, Run, choice_label, cost_unit, varying_axes  # noqa: E402

BASELINE_STYLE = dict(zip(BASELINE_NAMES, (("s", "#d62728"), ("D", "#1f77b4"), ("^", "#2ca02c"))))


FIGURE_FILES = ("accuracy_vs_macs.png", "accuracy_vs_latency.png", "axis_effects.png", "error_edf.png",
                "learning_curves.png", "param_importance.png")


def make_figures(run: Run, fig_dir: Path) -> list[Figure]:
    """Every figure of the report; each one decides by itself whether the data can support it.

    Figures of an earlier build are removed first, so a figure skipped now never survives from a previous report.
    """
    fig_dir.mkdir(parents=True, exist_ok=True)
    for name in FIGURE_FILES:
        (fig_dir / name).unlink(missing_ok=True)
    macs, latency, effects, edf, curves, importance = (fig_dir / name for name in FIGURE_FILES)
    with sns.axes_style("whitegrid"), plt.rc_context({"figure.dpi": 110, "font.size": 9}):
        return [_scatter(run, "macs", macs), _scatter(run, "latency_ms", latency), _axis_effects(run, effects),
                _error_edf(run, edf), _learning_curves(run, curves), _importance(run, importance)]


def _save(fig, path: Path) -> Path:
    """Write a PNG without the 'Software' tag (it holds a URL) and free the figure."""
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def _scatter(run: Run, cost: str, path: Path) -> Figure:
    """Accuracy against a cost with the Pareto front as a step line and the baselines labelled."""
    label = COST_LABELS[cost]
    title = f"Validation top-1 vs {label}"
    rows = run.completed.dropna(subset=["val_top1", cost])
    if len(rows) < 2:
        return Figure(title, f"Skipped: needs at least 2 completed rows with {label} measured, found {len(rows)}.")
    scale, unit = cost_unit(cost, rows[cost])
    rows = rows.assign(x=rows[cost] / scale)
    fig, ax = plt.subplots(figsize=(7.6, 4.4))
    cands = rows[rows["kind"] != "baseline"]
    hue = "spatial" if "spatial" in cands else None
    style = "nonlinearity" if "nonlinearity" in cands else None
    if not cands.empty:
        sns.scatterplot(data=cands, x="x", y="val_top1", hue=hue, style=style, s=50, ax=ax)
    for _, base in rows[rows["kind"] == "baseline"].iterrows():
        marker, color = BASELINE_STYLE.get(base["name"], ("P", "#7f7f7f"))
        ax.scatter(base["x"], base["val_top1"], marker=marker, s=130, color=color, edgecolor="black", zorder=4,
                   label=f"baseline {base['name']}")
        ax.annotate(base["name"], (base["x"], base["val_top1"]), xytext=(6, 6), textcoords="offset points",
                    fontsize=8, fontweight="bold", color=color)
    front = pareto_front(rows, "val_top1", "x")
    ax.step(front["x"], front["val_top1"], where="post", color="black", linestyle="--", linewidth=1,
            label="Pareto front", zorder=3)
    if rows["x"].min() > 0 and rows["x"].max() / rows["x"].min() > 20:
        ax.set_xscale("log")
    what = "multiply-accumulates per image" if cost == "macs" else "batch-1"
    ax.set_xlabel(f"{label} ({unit}, {what})")
    ax.set_ylabel("validation top-1 (%)")
    ax.margins(x=0.12, y=0.08)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    caption = (f"Validation top-1 (%) against {label} ({unit}) for {len(rows)} completed rows; the dashed step line "
               f"is the Pareto front (max top-1, min {label}, {len(front)} rows); baselines are the large labelled "
               "markers.")
    return Figure(title, caption, _save(fig, path))


def _axis_effects(run: Run, path: Path) -> Figure:
    """The additive OLS's estimate of each choice against its axis's reference choice, with 95 % CIs."""
    title = "Per-axis effects on validation top-1 (additive OLS, vs a reference choice)"
    table, axes = run.effects, run.design_axes
    n_model = table.attrs.get("n_model", len(run.candidates))
    if table.empty or not table["estimable"].any():
        return Figure(title, f"Skipped: no effect is estimable from {n_model} full-budget candidate rows over "
                             f"{len(axes)} varying axes (the reasons are in Findings).")
    axes = list(dict.fromkeys(table["axis"]))
    fig, subplots = plt.subplots(1, len(axes), figsize=(3.2 * len(axes), 3.8), sharey=True, squeeze=False)
    for ax, axis in zip(subplots[0], axes):
        rows = table[table["axis"] == axis]
        reference = rows["reference"].iloc[0]
        labels = [f"{reference}\n(reference)"] + [f"{c}\n(n={n})" for c, n in zip(rows["choice"], rows["n"])]
        ax.axhline(0.0, color="black", linestyle=":", linewidth=1)
        ax.plot([0], [0.0], marker="o", markerfacecolor="white", color="black")
        for x, row in enumerate(rows.itertuples(index=False), start=1):
            if row.estimable:
                ax.errorbar([x], [row.estimate], yerr=[[row.estimate - row.ci_low], [row.ci_high - row.estimate]],
                            fmt="o", color="#d62728", capsize=4, linewidth=1.5)
            else:
                ax.annotate("n/e", (x, 0.0), ha="center", va="bottom", color="0.4", fontsize=8)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.set_xlabel(axis)
        ax.set_ylabel("Δ val top-1 vs reference (pp)")
    formula = table.attrs.get("formula", "")
    caption = (f"Estimates (pp of validation top-1) of each choice against its axis's reference choice (0, hollow "
               f"dot), with 95% CIs, from one additive OLS over {n_model} full-budget candidate rows, seeds as "
               f"replicates ({formula}); n/e = not estimable, reason in Findings.")
    return Figure(title, caption, _save(fig, path))


def _error_edf(run: Run, path: Path) -> Figure:
    """Complexity-normalised error EDFs per axis, for axes where every choice has enough full-budget rows."""
    title = "Complexity-normalised error EDFs"
    counts = {axis: edf_counts(run.trials, axis) for axis in run.design_axes}
    ready = [a for a, c in counts.items() if len(c) >= 2 and c.min() >= MIN_ROWS_PER_CHOICE]
    text = "; ".join(f"{a}: " + ", ".join(f"{k} {v}" for k, v in c.items())
                     for a, c in counts.items() if a not in ready)
    if not ready:
        return Figure(title, f"Skipped: an error EDF per axis needs at least {MIN_ROWS_PER_CHOICE} full-budget rows "
                             f"for every choice; rows per choice: {text or 'no varying axis'}.")
    fig, subplots = plt.subplots(1, len(ready), figsize=(3.6 * len(ready), 3.6), sharey=True, squeeze=False)
    for ax, axis in zip(subplots[0], ready):
        edf = error_edf(run.trials, axis)
        given = [choice_label(c) for c in run.choice_orders.get(axis, [])]
        order = [c for c in given if c in set(edf["choice"])] + sorted(set(edf["choice"]) - set(given))
        sns.ecdfplot(data=edf, x="error", hue="choice", hue_order=order, weights="weight", ax=ax)  # per choice
        ax.set_xlabel(f"{axis}: val error (%)")
        ax.set_ylabel("cumulative fraction (MACs-normalised)")
    rows = len(error_edf(run.trials, ready[0]))
    caption = (f"Error EDF (error = 100 − val top-1, %) of each choice over {rows} full-budget candidate rows "
               "(confirmation replicates left out), each model weighted by 1 / (its choice's density of log MACs, "
               "10 shared bins) so every choice has the same MACs distribution; higher and further left is better."
               + (f" Not drawn where a choice has fewer than {MIN_ROWS_PER_CHOICE} rows: {text}." if text else ""))
    return Figure(title, caption, _save(fig, path))


def _learning_curves(run: Run, path: Path) -> Figure:
    """val top-1 per epoch for the best five candidates and the baselines."""
    title = "Learning curves"
    curves = run.curves
    if curves.empty or not {"trial_id", "epoch", "val_top1"} <= set(curves.columns):
        return Figure(title, "Skipped: curves.parquet is missing or lacks trial_id/epoch/val_top1 (0 curves).")
    best = run.candidates.nlargest(5, "val_top1")
    chosen = pd.concat([best, run.completed[run.completed["kind"] == "baseline"]])
    labels = dict(zip(chosen["trial_id"], chosen["name"] + np.where(chosen["kind"] == "baseline", " (baseline)", "")))
    data = curves[curves["trial_id"].astype(str).isin(labels)]
    if data.empty:
        return Figure(title, "Skipped: curves.parquet holds none of the 5 best candidates or the 3 baselines.")
    kinds = dict(zip(chosen["trial_id"], chosen["kind"]))
    data = data.assign(trial=data["trial_id"].astype(str).map(labels),
                       kind=data["trial_id"].astype(str).map(kinds)).sort_values("epoch")
    fig, ax = plt.subplots(figsize=(7.6, 4.2))
    sns.lineplot(data=data, x="epoch", y="val_top1", hue="trial", style="kind", style_order=["candidate", "baseline"],
                 marker="o", markersize=4, ax=ax)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation top-1 (%)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    caption = f"Validation top-1 (%) per epoch for the {len(labels)} trials chosen (best ≤5 candidates and baselines)."
    return Figure(title, caption, _save(fig, path))


def parameter_importance(run: Run) -> pd.Series | None:
    """fANOVA importance of each varying axis from an in-memory Optuna study.

    None when fANOVA has nothing to explain: under 4 trials, no varying axis, or one accuracy for all.
    """
    import optuna

    cands, axes = run.candidates.dropna(subset=["val_top1"]), varying_axes(run)
    if len(cands) < 4 or not axes or cands["val_top1"].nunique() < 2:
        return None
    params = [{a: _plain(v) if pd.notna(v) else "n/a" for a, v in row.items()} for row in cands[axes].to_dict("records")]
    dists = {a: optuna.distributions.CategoricalDistribution(sorted({p[a] for p in params}, key=str)) for a in axes}
    trials = [optuna.trial.create_trial(params=p, distributions=dists, value=float(v))
              for p, v in zip(params, cands["val_top1"])]
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="maximize")
        study.add_trials(trials)
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        return pd.Series(optuna.importance.get_param_importances(study, evaluator=evaluator), dtype=float)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _plain(value):
    """Optuna distributions take plain Python values, not numpy scalars."""
    return value.item() if isinstance(value, np.generic) else value


def _importance(run: Run, path: Path) -> Figure:
    """Bar chart of the fANOVA importances, named by evaluator in the caption."""
    title = "Parameter importance"
    importance = parameter_importance(run)
    if importance is None or importance.empty:
        return Figure(title, f"Skipped: needs at least 4 completed candidates with a varying axis and differing "
                             f"val top-1, found {len(run.candidates)} candidates, {len(varying_axes(run))} varying "
                             f"axes and {run.candidates['val_top1'].nunique()} distinct val top-1 values.")
    fig, ax = plt.subplots(figsize=(5.6, 0.6 * len(importance) + 1.6))
    sns.barplot(x=importance.values, y=importance.index, color="#4c72b0", ax=ax)
    ax.set_xlabel("importance (fraction of val top-1 variance, unitless)")
    ax.set_ylabel("axis")
    caption = (f"Importance of each axis for validation top-1 over {len(run.candidates)} completed candidates, from "
               "Optuna's FanovaImportanceEvaluator(seed=0) on an in-memory study.")
    return Figure(title, caption, _save(fig, path))
