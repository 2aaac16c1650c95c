"""The report's sentences: the run header and the findings, each read off the numbers."""

from __future__ import annotations

import json
import math

import pandas as pd

from ablate.pareto import pareto_mask
from ablate.report.data import (
    BASELINE_NAMES, COST_LABELS, MISSING, REFERENCE, Run, choice_label, cost_unit, delta_vs_reference, fmt,
    strip_urls, varying_axes,
)


def findings(run: Run) -> list[str]:
    """Sentences read off the numbers: the best choice per axis, the best candidate, the cheapest optimal one."""
    return [_axis_sentence(run, axis) for axis in varying_axes(run)] + _best_sentence(run) + [_cheapest_sentence(run)]


def _axis_sentence(run: Run, axis: str) -> str:
    """The choice with the highest mean val top-1 on one axis, against ResNet50 and the other choices."""
    cands = run.candidates.dropna(subset=["val_top1"])
    means = cands.groupby(cands[axis].map(choice_label))["val_top1"].agg(["mean", "count"])
    best = means["mean"].idxmax()
    mean, count = means.loc[best, "mean"], int(means.loc[best, "count"])
    ref = run.baseline(REFERENCE)
    versus = "" if ref is None else \
        f", {fmt(mean - ref['val_top1'], '{:+.2f}')} pp vs {REFERENCE} ({fmt(ref['val_top1'])} %)"
    return (f"{axis}: `{best}` did best with mean val top-1 {fmt(mean)} % (n={count}){versus}; "
            f"other choices {_others(means, best)}.")


def _best_sentence(run: Run) -> list[str]:
    """The best completed candidate against every baseline present."""
    cands = run.candidates.dropna(subset=["val_top1"])
    if cands.empty:
        return []
    top = cands.loc[cands["val_top1"].idxmax()]
    gaps = [f"{fmt(top['val_top1'] - b['val_top1'], '{:+.2f}')} pp vs {name} ({fmt(b['val_top1'])} %)"
            for name in BASELINE_NAMES if (b := run.baseline(name)) is not None]
    against = ": " + ", ".join(gaps) if gaps else f" (best of {len(cands)} completed candidates, no baseline ran)"
    return [f"Best candidate `{top['name']}` reached {fmt(top['val_top1'])} % val top-1{against}."]


def _others(means: pd.DataFrame, best: str) -> str:
    """The remaining choices of an axis with their means, best first."""
    rest = means.drop(index=best).sort_values("mean", ascending=False)
    return ", ".join(f"`{k}` {fmt(r['mean'])} % (n={int(r['count'])})" for k, r in rest.iterrows())


def _cheapest_sentence(run: Run) -> str:
    """The lowest-cost candidate on the Pareto front: what accuracy the cheapest sensible choice keeps."""
    done = run.completed
    front = done[pareto_mask(done, "val_top1", run.cost) & (done["kind"] == "candidate")]
    scale, unit = cost_unit(run.cost, run.trials[run.cost])
    label = COST_LABELS[run.cost]
    if front.empty:
        return (f"No candidate is on the accuracy-vs-{label} Pareto front (0 of {len(run.candidates)} completed "
                "candidates).")
    cheap = front.loc[front[run.cost].idxmin()]
    delta = delta_vs_reference(run, cheap["val_top1"])
    versus = f" ({fmt(delta, '{:+.2f}')} pp vs {REFERENCE})" if math.isfinite(delta) else ""
    return (f"Cheapest Pareto-optimal candidate: `{cheap['name']}` at {fmt(cheap[run.cost], scale=scale)} {unit} "
            f"{label} with {fmt(cheap['val_top1'])} % val top-1{versus}; "
            f"{len(front)} candidate{'s are' if len(front) != 1 else ' is'} on the front.")


def header_items(run: Run) -> list[str]:
    """The run's identity: space, protocol, objectives, trial counts, time, hardware, versions."""
    meta, protocol = run.meta, run.meta.get("protocol") or {}
    protocol = protocol if isinstance(protocol, dict) else {"name": protocol}
    recipe = ", ".join(f"{k}={_compact(v)}" for k, v in protocol.items()
                       if k not in ("dataset", "epochs", "description", "expected"))
    counts = run.trials[run.trials["kind"] == "candidate"]["status"].value_counts()
    statuses = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("completed", "pruned", "failed"))
    others = ", ".join(f"{n} {s}" for s, n in counts.items() if s not in ("completed", "pruned", "failed"))
    objectives = meta.get("objectives") or []
    objective_text = "; ".join(f"{o.get('direction', '?')} {o.get('metric', '?')}" for o in objectives
                               if isinstance(o, dict)) or MISSING
    if meta.get("objectives_from"):
        objective_text += f" (from {_compact(meta['objectives_from'])})"
    if len(objectives) >= 2:
        objective_text += " (multi-objective)"
    space = meta.get("space")
    latency_note = ([
        "Latency: the search optimised `trial_latency_ms`, a batch-1 latency timed inside each trial on that trial's "
        "own resources before it trained (other trials may have shared the machine); the leaderboard's latency and "
        "throughput columns and the latency figure come from timing every model side by side on one idle worker "
        "at the end of the run."] if any(isinstance(o, dict) and o.get("metric") in ("latency", "trial_latency_ms")
                                        for o in objectives) else [])
    return [
        f"Space: {_compact(space.get('name', space) if isinstance(space, dict) else space)}",
        f"Protocol: dataset {_compact(protocol.get('dataset'))}, {_compact(protocol.get('epochs'))} epochs; "
        f"recipe: {recipe or MISSING}",
        f"Objectives: {objective_text}; Pareto front = max val top-1 vs min {COST_LABELS[run.cost]}",
        f"Candidate trials: {statuses}" + (f", {others}" if others else "")
        + f" (requested {_compact(meta.get('trials_requested'))}); sampler {_compact(meta.get('sampler'))}, "
          f"seed {_compact(meta.get('seed'))}",
        f"Wall time: {_duration(meta.get('wall_seconds'))} (started {_compact(meta.get('started'))}, "
        f"finished {_compact(meta.get('finished'))})",
        f"Hardware: {_pairs(meta.get('hardware'))}",
        f"Versions: {_pairs(meta.get('versions'))}",
    ] + latency_note


def _compact(value) -> str:
    if value is None or value == "":
        return MISSING
    text = json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list)) else str(value)
    return strip_urls(text) or MISSING


def _pairs(mapping) -> str:
    if not isinstance(mapping, dict) or not mapping:
        return _compact(mapping)
    return ", ".join(f"{k} {_compact(v)}" for k, v in mapping.items())


def _duration(seconds) -> str:
    try:
        total = int(round(float(seconds)))
    except (TypeError, ValueError):
        return MISSING
    hours, rest = divmod(total, 3600)
    return (f"{hours} h " if hours else "") + f"{rest // 60} min {rest % 60} s"
