"""The report's run header: what ran, where, with which versions, how the configs were chosen and replicated."""

from __future__ import annotations

import json

from ablate.core.formatting import duration_text
from ablate.core.schema import FINAL_STATUSES, search_trials
from ablate.report.data import MISSING, Run, md_escape, strip_urls


def header_items(run: Run) -> list[str]:
    """The run's identity: space, protocol, objectives, trial counts, time, hardware, versions."""
    meta, protocol = run.meta, run.meta.get("protocol") or {}
    protocol = {**protocol, "macro": meta.get("macro", protocol.get("macro"))}  # the macro the run built on
    recipe = ", ".join(f"{k}={_compact(v)}" for k, v in protocol.items()
                       if k not in ("dataset", "epochs", "description", "expected"))
    counts = search_trials(run.trials)["status"].value_counts()
    statuses = ", ".join(f"{counts.get(s, 0)} {s}" for s in FINAL_STATUSES)
    others = ", ".join(f"{n} {s}" for s, n in counts.items() if s not in FINAL_STATUSES)
    objectives = meta.get("objectives") or []
    objective_text = "; ".join(f"{_compact(o.get('direction', '?'))} {_compact(o.get('metric', '?'))}"
                               for o in objectives if isinstance(o, dict)) or MISSING
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
    return in_progress(run) + pooled_item(run) + [
        f"Space: {_compact(space.get('name', space) if isinstance(space, dict) else space)}",
        f"Protocol: dataset {_compact(protocol.get('dataset'))}, {_compact(protocol.get('epochs'))} epochs; "
        f"recipe: {recipe or MISSING}",
        f"Objectives: {objective_text} (what the search optimised, on the validation split); the report's Pareto "
        f"front (★, figures, Findings) = {run.front_text}",
        f"Candidate trials: {statuses}" + (f", {others}" if others else "")
        + f" (requested {_compact(meta.get('trials_requested'))}); sampler {_compact(meta.get('sampler'))}, "
          f"seed {_compact(meta.get('seed'))}",
        f"Wall time: {duration_text(meta.get('wall_seconds'))} (started {_compact(meta.get('started'))}, "
        f"finished {_compact(meta.get('finished'))})",
        _design_item(run),
        f"Hardware: {_pairs(meta.get('hardware'))}",
        f"Versions: {_pairs(meta.get('versions'))}",
    ] + latency_note


def in_progress(run: Run) -> list[str]:
    """The status line of a report built before its run finished (none when it finished or run.json says nothing)."""
    meta = run.meta
    return ["Status: IN PROGRESS — built before the run finished (it is running, or was interrupted and "
            "`--resume` continues it); the tables hold the models finished so far, and "
            "`run_ablation.py status` shows how far it has got"
            ] if meta and "finished" in meta and not meta["finished"] else []


def pooled_item(run: Run) -> list[str]:
    """What a pooled report stands on (none for one run's report)."""
    pooled = run.meta.get("pooled")
    if not isinstance(pooled, dict):
        return []
    runs = ", ".join(f"`{md_escape(str(r))}`" for r in pooled.get("runs", []))
    twice = (f"; {pooled['duplicates']} models trained by two runs (same split seed, config and training seed) "
             "counted once") if pooled.get("duplicates") else ""
    seeds = pooled.get("split_seeds") or []
    apart = (f"; split seeds {', '.join(map(str, seeds))}: the training seeds of the n-th are shown as "
             f"n × {pooled.get('seed_stride')} + seed") if len(seeds) > 1 else ""
    return [f"Pooled: {len(pooled.get('runs', []))} runs of one experiment ({runs}), {pooled.get('models')} models; "
            f"one Holm family over their union{twice}{apart}"]


def _design_item(run: Run) -> str:
    """How the configs were chosen and replicated: design, confirmation, rows per phase, seeds per config."""
    meta = run.meta
    phases = run.trials["phase"].fillna("").astype(str) if "phase" in run.trials else None
    by_phase = ", ".join(f"{p} {n}" for p, n in phases[phases != ""].value_counts().items()) if phases is not None \
        else ""
    seeds = run.summary["n"]
    spread = f"{int(seeds.min())}–{int(seeds.max())}" if len(seeds) and seeds.min() != seeds.max() else \
        (f"{int(seeds.iloc[0])}" if len(seeds) else "0")
    replication = (f"confirmation: the best {_compact(meta.get('confirm'))} candidates by the run seed's val top-1, "
                   f"and the baselines, retrained under {_compact(meta.get('seeds'))} fresh training seeds"
                   if meta.get("confirm") else "confirmation: none (no candidate retrained under fresh seeds)")
    twins = "; ".join(f"`{name}` = {', '.join(f'`{a}`' for a in others)}" for name, others in run.aliases.items())
    twins = (f"; twins (one network under several names, trained and counted once, reported under the first name): "
             f"{twins}" if twins else "")
    return (f"Design: {_compact(meta.get('design'))}; {replication}; rows by phase: {by_phase or MISSING}; "
            f"completed seeds per config: {spread}{twins}")


def _compact(value) -> str:
    if value is None or value == "":
        return MISSING
    text = json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list)) else str(value)
    return md_escape(strip_urls(text)) or MISSING


def _pairs(mapping) -> str:
    if not isinstance(mapping, dict) or not mapping:
        return _compact(mapping)
    return ", ".join(f"{k} {_compact(v)}" for k, v in mapping.items())
