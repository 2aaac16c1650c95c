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

from ablate.analysis.axis_effects import choice_label  # noqa: E402
from ablate.analysis.edf import MIN_ROWS_PER_CHOICE, edf_counts, error_edf, normalisable  # noqa: E402
from ablate.analysis.equal_cost import baseline_front  # noqa: E402
from ablate.core.files import write_atomic  # noqa: E402
from ablate.core.schema import EVIDENCE_PHASES, EvidenceKind, Kind, of_kind, search_trials  # noqa: E402
from ablate.report.data import COST_LABELS, EVIDENCE_SPLIT, Figure, Run, cost_unit, varying_axes  # noqa: E402
from ablate.report.style import CANDIDATE_PALETTE, baseline_marker, baseline_names, colour, palette, shown_configs  # noqa: E402

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
        return [_scatter(run, "macs", macs), _scatter(run, "latency_ms", latency),
                _factorial_only(run, _axis_effects, effects), _factorial_only(run, _error_edf, edf),
                _learning_curves(run, curves), _factorial_only(run, _importance, importance)]


FACTORIAL_TITLES = {"_axis_effects": f"Per-axis effects on {EVIDENCE_SPLIT} top-1 "
                                     "(matched pairs, vs a reference choice)",
                    "_error_edf": "Error EDFs (complexity-normalised where the axis allows)",
                    "_importance": "Parameter importance"}


def _factorial_only(run: Run, draw, path: Path) -> Figure:
    """A figure over many configs that differ in several axes at once; an ablation's one-axis-at-a-time design has
    none, so its caption says so instead of counting what it lacks."""
    if run.reference is None:
        return draw(run, path)
    configs = run.summary.loc[run.summary["kind"] == Kind.CANDIDATE, "name"].nunique()
    return Figure(FACTORIAL_TITLES[draw.__name__],
                  "Skipped: an ablation changes one axis at a time around the reference "
                  f"({configs} candidate configs), "
                  "so no two variants differ in one axis elsewhere in the space; this figure needs a factorial design "
                  "(--design grid or --design balanced). The answers table judges each variant against the "
                  "reference.")


def _save(fig, path: Path) -> Path:
    """Write a PNG without the 'Software' tag (it holds a URL) and free the figure."""
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))
    plt.close(fig)
    return path


def _scatter(run: Run, cost: str, path: Path) -> Figure:
    """Evidence top-1 against a cost: one marker per config with its 95 % interval, its models as faint dots, the
    baselines' step front (the best baseline costing no more: the yardstick of "Δ at equal MACs") and, against the
    run's own cost, the report's Pareto front ringed. Names are in the legend, never printed beside a marker (labels
    of close markers would print over each other)."""
    label = COST_LABELS[cost]
    title = f"Test top-1 vs {label}"
    configs = run.summary.assign(on_front=run.front).dropna(subset=["test_top1_mean", cost])
    configs = configs[configs[cost] > 0]
    if len(configs) < 2:
        return Figure(title, f"Skipped: needs at least 2 configs with {label} measured and an evidence top-1, "
                             f"found {len(configs)}.")
    scale, unit = cost_unit(cost, configs[cost])
    configs = configs.assign(x=configs[cost] / scale)
    colours = palette(run)
    fig, ax = plt.subplots(figsize=(7.6, 4.4))
    models = run.completed.merge(configs[["name", "evidence", "x"]], on="name")
    judged = models["phase"].isin(EVIDENCE_PHASES)
    models = models[np.where(models["evidence"] == EvidenceKind.CONFIRMED, judged, ~judged)]
    ax.scatter(models["x"], models[f"{EVIDENCE_SPLIT}_top1"], s=10, color="0.55", alpha=0.35, linewidths=0,
               zorder=1, label="one model (training seed)")
    low = (configs["test_top1_mean"] - configs["test_top1_ci_low"]).fillna(0).clip(lower=0)
    high = (configs["test_top1_ci_high"] - configs["test_top1_mean"]).fillna(0).clip(lower=0)
    ax.errorbar(configs["x"], configs["test_top1_mean"], yerr=[low, high], fmt="none", ecolor="0.35",
                elinewidth=0.8, capsize=2, zorder=2)
    cands = configs[configs["kind"] != Kind.BASELINE]
    if not cands.empty:
        hue, style = ("spatial" if "spatial" in cands else None), ("nonlinearity" if "nonlinearity" in cands else None)
        cands = cands.assign(**{c: cands[c].map(choice_label) for c in (hue, style) if c})
        sns.scatterplot(data=cands, x="x", y="test_top1_mean", hue=hue, style=style, s=55, ax=ax, zorder=3,
                        palette={c: colour(colours, c) for c in cands[hue]} if hue else None)
    bases = of_kind(configs, Kind.BASELINE)
    for _, base in bases.iterrows():
        ax.scatter(base["x"], base["test_top1_mean"], marker=baseline_marker(run, base["name"]), s=130,
                   color=colour(colours, base["name"]), edgecolor="black", zorder=4, label=f"baseline {base['name']}")
    front = baseline_front(run.summary, cost=cost)
    if cost == "macs" and len(front):
        steps = front[["name", cost]].assign(x=front[cost] / scale).merge(configs[["name", "test_top1_mean"]],
                                                                         on="name")
        right = max(configs["x"].max(), steps["x"].max()) * 1.05
        ax.step(list(steps["x"]) + [right], list(steps["test_top1_mean"]) + [steps["test_top1_mean"].iloc[-1]],
                where="post", color="black", linestyle="--", linewidth=1, zorder=3,
                label="best baseline costing no more")
    ringed = configs[configs["on_front"]] if cost == run.cost else configs.iloc[:0]
    if len(ringed):
        ax.scatter(ringed["x"], ringed["test_top1_mean"], s=260, facecolors="none", edgecolors="black",
                   linewidths=1.0, zorder=5, label="Pareto front (★)")
    if configs["x"].max() / configs["x"].min() > 20:
        ax.set_xscale("log")
    what = "multiply-accumulates per image" if cost == "macs" else "batch-1"
    ax.set_xlabel(f"{label} ({unit}, {what})")
    ax.set_ylabel(f"{EVIDENCE_SPLIT} top-1 (%)")
    ax.margins(x=0.12, y=0.08)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))  # one entry per label
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              frameon=False)
    confirmed = int((configs["evidence"] == EvidenceKind.CONFIRMED).sum())
    caption = (f"{EVIDENCE_SPLIT.capitalize()} top-1 (%) against {label} ({unit}) for {len(configs)} configs "
               f"({len(cands)} candidates, {len(bases)} baselines), one marker each at its evidence mean with its 95 % "
               f"interval (seeds and test images): {confirmed} over the seeds nothing selected on (fresh confirmation "
               f"seeds, or every seed of an ablation)"
               + (f", the other {len(configs) - confirmed} over the run seed's model"
                  if confirmed < len(configs) else "")
               + f"; faint dots are the "
               f"{len(models)} single models. Baselines are the large grey markers named in the legend"
               + ("; the dashed step is the best baseline costing no more MACs (chosen on the selection numbers), "
                  "the yardstick of \"Δ at equal MACs\"" if cost == "macs" and len(front) else "")
               + (f"; the {len(ringed)} ringed configs are the Pareto front ({run.front_text}), the leaderboard's ★"
                  if len(ringed) else "") + ".")
    return Figure(title, caption, _save(fig, path), configs)


def _axis_effects(run: Run, path: Path) -> Figure:
    """Each choice's main effect against its axis's reference choice (matched pairs), with 95 % CIs."""
    title = FACTORIAL_TITLES["_axis_effects"]
    table, axes = run.effects, run.design_axes
    n_model = table.attrs.get("n_model", run.candidates["name"].nunique())
    if table.empty or not table["estimable"].any():
        return Figure(title, f"Skipped: no effect is estimable from {n_model} candidate configs over "
                             f"{len(axes)} varying axes (the reasons are in Findings).")
    axes, colours = list(dict.fromkeys(table["axis"])), palette(run)
    fig, subplots = plt.subplots(1, len(axes), figsize=(3.2 * len(axes), 3.8), sharey=True, squeeze=False)
    for ax, axis in zip(subplots[0], axes):
        rows = table[table["axis"] == axis]
        reference = rows["reference"].iloc[0]
        labels = [f"{reference}\n(reference)"] + [f"{c}\n({n} pairs)" for c, n in zip(rows["choice"], rows["n"])]
        ax.axhline(0.0, color="black", linestyle=":", linewidth=1)
        ax.plot([0], [0.0], marker="o", markerfacecolor="white", color="black")
        for x, row in enumerate(rows.itertuples(index=False), start=1):
            if row.estimable:
                ax.errorbar([x], [row.estimate], yerr=[[row.estimate - row.ci_low], [row.ci_high - row.estimate]],
                            fmt="o", color=colour(colours, row.choice), capsize=4, linewidth=1.5)
            else:
                ax.annotate("n/e", (x, 0.0), ha="center", va="bottom", color="0.4", fontsize=8)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.set_xlabel(axis)
        ax.set_ylabel(f"Δ {EVIDENCE_SPLIT} top-1 vs reference (pp)")
    caption = (f"Main effects (pp of {EVIDENCE_SPLIT} top-1) of each choice against its axis's reference choice (0, "
               f"hollow dot): the mean Δ over the pairs of configs that differ in that axis alone, among {n_model} "
               f"configs with one run-seed model each, with unadjusted 95 % t-intervals over the pairs (so the "
               f"spread across the other axes' settings is in them); n/e = not estimable, reason in Findings; "
               "verdicts (Holm-adjusted) in Verdicts.")
    return Figure(title, caption, _save(fig, path), table[table["axis"].isin(axes)])


def _error_edf(run: Run, path: Path) -> Figure:
    """Error EDFs per axis, MACs-normalised over the range every choice occupies where that range holds enough
    models (plain otherwise, and always for width), for axes where every choice has enough full-budget models."""
    title = FACTORIAL_TITLES["_error_edf"]
    metric = f"{EVIDENCE_SPLIT}_top1"
    counts = {axis: edf_counts(run.trials, axis, metric) for axis in run.design_axes}
    ready = [a for a, c in counts.items() if len(c) >= 2 and c.min() >= MIN_ROWS_PER_CHOICE]
    text = "; ".join(f"{a}: " + (", ".join(f"{k} {v}" for k, v in c.items()) or "0 configs")
                     for a, c in counts.items() if a not in ready)
    if not ready:
        return Figure(title, f"Skipped: an error EDF per axis needs at least {MIN_ROWS_PER_CHOICE} full-budget configs "
                             f"for every choice; configs per choice: {text or 'no varying axis'}.")
    fig, subplots = plt.subplots(1, len(ready), figsize=(3.6 * len(ready), 3.6), sharey=True, squeeze=False)
    notes, drawn, colours = [], [], palette(run)
    for ax, axis in zip(subplots[0], ready):
        normalise, why = normalisable(run.trials, axis, metric)
        edf = error_edf(run.trials, axis, metric, normalise=normalise)
        given = [choice_label(c) for c in run.choice_orders.get(axis, [])]
        order = [c for c in given if c in set(edf["choice"])] + sorted(set(edf["choice"]) - set(given))
        sns.ecdfplot(data=edf, x="error", hue="choice", hue_order=order, weights="weight", ax=ax,  # per choice
                     palette={c: colour(colours, c) for c in order})
        drawn.append(edf.assign(axis=axis))
        ax.set_xlabel(f"{axis}: {EVIDENCE_SPLIT} error (%)")
        ax.set_ylabel("cumulative fraction" + (" (MACs-normalised)" if normalise else ""))
        notes.append(f"{axis}: normalised over the MACs every choice occupies ({len(edf)} configs)" if normalise
                     else f"{axis}: plain, not normalised — {why}")
    caption = (f"Error EDF (error = 100 − {EVIDENCE_SPLIT} top-1, %) of each choice over the run seed's full-budget "
               "candidates (confirmation reruns left out); where normalised, each model is weighted by 1 / (its "
               "choice's density of log MACs, 10 shared bins) inside the log-MACs range all choices occupy, so there "
               "every choice has the same MACs distribution; higher and further left is better. " + "; ".join(notes)
               + "." + (f" Not drawn where a choice has fewer than {MIN_ROWS_PER_CHOICE} configs: {text}."
                        if text else ""))
    return Figure(title, caption, _save(fig, path), pd.concat(drawn, ignore_index=True))


def _learning_curves(run: Run, path: Path) -> Figure:
    """val top-1 per epoch of the leaderboard's first candidates and the baselines: each config's mean over its
    completed models, with a band over them where it has several."""
    title = "Learning curves"
    curves = run.curves
    if curves.empty or not {"trial_id", "epoch", "val_top1"} <= set(curves.columns):
        return Figure(title, "Skipped: curves.parquet is missing or lacks trial_id/epoch/val_top1 (0 curves).")
    shown, bases = shown_configs(run), baseline_names(run)
    models = run.completed[run.completed["name"].isin(shown + bases)]
    data = curves[["trial_id", "epoch", "val_top1"]].astype({"trial_id": str}).merge(
        models[["trial_id", "name", "kind"]].astype({"trial_id": str}), on="trial_id").sort_values("epoch")
    if data.empty:
        return Figure(title, f"Skipped: curves.parquet holds none of the {len(shown)} candidates first on the "
                             f"leaderboard or the {len(bases)} baselines.")
    order = [n for n in shown + bases if n in set(data["name"])]
    fig, ax = plt.subplots(figsize=(7.6, 4.2))
    sns.lineplot(data=data, x="epoch", y="val_top1", hue="name", hue_order=order, palette=palette(run),
                 style="kind", style_order=list(Kind), marker="o", markersize=4,
                 errorbar=("ci", 95), seed=0, ax=ax)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation top-1 (%)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    per = data.drop_duplicates("trial_id")["kind"].value_counts()
    named = data.drop_duplicates("name")["kind"].value_counts()
    caption = (f"Validation top-1 (%) per epoch of the {named.get(Kind.CANDIDATE, 0)} candidates first on the "
               f"leaderboard ({per.get(Kind.CANDIDATE, 0)} models) and the {named.get(Kind.BASELINE, 0)} baselines "
               f"({per.get(Kind.BASELINE, 0)} models): each config's mean over its models, with a 95 % bootstrap band "
               "over them where it has several.")
    return Figure(title, caption, _save(fig, path), data)


def importance_rows(run: Run) -> pd.DataFrame:
    """The models fANOVA is fitted on: the run seed's completed candidates (design and search phases: one model per
    config, what selection saw) with a val top-1; confirmation reruns and an ablation's seeds are left out."""
    return search_trials(run.candidates).dropna(subset=["val_top1"])


def parameter_importance(run: Run) -> pd.Series | None:
    """fANOVA importance of each varying axis from an in-memory Optuna study over :func:`importance_rows`.

    None when fANOVA has nothing to explain: under 4 trials, no varying axis, or one accuracy for all.
    """
    import optuna

    cands, axes = importance_rows(run), varying_axes(run)
    if len(cands) < 4 or not axes or cands["val_top1"].nunique() < 2:
        return None
    params = [{a: _plain(v) if pd.notna(v) else "n/a" for a, v in row.items()}
              for row in cands[axes].to_dict("records")]
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
    title = FACTORIAL_TITLES["_importance"]
    rows, importance = importance_rows(run), parameter_importance(run)
    if importance is None or importance.empty:
        return Figure(title, f"Skipped: needs at least 4 completed run-seed candidates (design and search phases) "
                             f"with a varying axis and differing val top-1, found {len(rows)} candidates, "
                             f"{len(varying_axes(run))} varying axes and {rows['val_top1'].nunique()} distinct val "
                             "top-1 values.", data=rows)
    fig, ax = plt.subplots(figsize=(5.6, 0.6 * len(importance) + 1.6))
    sns.barplot(x=importance.values, y=importance.index, color=CANDIDATE_PALETTE[0], ax=ax)
    ax.set_xlabel("importance (fraction of val top-1 variance, unitless)")
    ax.set_ylabel("axis")
    caption = (f"Importance of each axis for validation top-1 over the {len(rows)} completed run-seed candidates "
               f"(one model per config: design and search phases; reruns under other seeds left out), from Optuna's "
               "FanovaImportanceEvaluator(seed=0) on an in-memory study.")
    return Figure(title, caption, _save(fig, path), rows)
