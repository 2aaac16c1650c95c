"""A run's plan: its design's trainings, wall time and detectable differences, from the noise and times known
before anything is trained (the package's docstring says where each number comes from)."""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

from ablate.core.schema import Kind
from ablate.planning.designs import DesignPlan, Shape, plan_design
from ablate.planning.history import History, earlier_runs, median_fixed, shipped_record
from ablate.planning.noise import NoiseModel, estimate
from ablate.planning.timing import ModelTime, measure_model
from ablate.space.design import design_points


@dataclass(frozen=True)
class Plan:
    """A run's plan: its own design's (``chosen``), the alternatives considered, and where the numbers come from."""

    chosen: DesignPlan
    alternatives: tuple[DesignPlan, ...]
    noise: NoiseModel | None
    time_source: str
    seconds: dict[str, float]  # config → seconds of one training here (what orders the run's Ray tasks)

    def as_dict(self) -> dict:
        """What run.json keeps (``plan``): the chosen design's numbers and their sources."""
        return {"design": self.chosen.label, "trainings": self.chosen.trainings,
                "minutes": round(self.chosen.seconds / 60, 2), "family": self.chosen.family,
                "detectable": {k: round(v, 2) for k, v in self.chosen.detectable.items() if math.isfinite(v)},
                "noise": self.noise.source if self.noise else None, "time": self.time_source,
                "seconds": {k: round(v, 2) for k, v in self.seconds.items()}}


def noise_model(history: History, protocol, macro: str, splits: dict[str, int]) -> NoiseModel | None:
    """The noise of earlier runs of this recipe, else of the record shipped for the protocol; None without either."""
    if history.predictions:
        model = estimate(history.predictions, f"earlier runs: {history.source}")
        if model is not None:
            return model
    record = shipped_record(protocol, macro, splits)
    return estimate([record[0]], record[1]) if record else None


def shapes(settings, designs: tuple[str, ...] = (), seed_counts: tuple[int, ...] = (),
           seconds: dict[str, float] | None = None) -> list[Shape]:
    """The run's own design first, then the alternatives a plan compares (other seed counts of an ablation,
    the factorial designs); an ablation's trainings are known config by config (``seconds``: config → seconds)."""
    space = settings.space
    baselines = len(space.baselines)
    effects = sum(len(a.choices) - 1 for a in space.axes)

    def shape(design: str, seeds: int) -> Shape | None:
        if design == "ablation":
            if space.reference is None:
                return None
            configs = _design_configs(settings, "ablation")
            known = [seconds[c] for c in configs if c in (seconds or {})]
            trainings = tuple(sorted(known * seeds, reverse=True)) if len(known) == baselines + 1 + effects else ()
            reference, variants, bases = configs[0], configs[1:1 + effects], configs[1 + effects:]
            rows = tuple((v, reference) for v in variants) + tuple((reference, b) for b in bases)
            return Shape("ablation", 1 + effects, baselines, seeds, 1 + effects, trainings=trainings, rows=rows)
        configs = space.size if design == "grid" else settings.trials if settings.design == design else \
            min(space.size, 12)
        points = design_points(space, design, configs, settings.seed)
        return Shape(design, configs, baselines, seeds, settings.confirm, effects, matched_pairs(points, space.axes))

    own = shape(settings.design, settings.seeds)
    others = [shape("ablation", s) for s in seed_counts if settings.design != "ablation" or s != settings.seeds]
    others += [shape(d, settings.seeds) for d in designs if d != settings.design]
    return [s for s in [own, *others] if s is not None]


def plan_run(settings, results_dir: Path, *, workers: int | None = None, designs: tuple[str, ...] = (),
             seed_counts: tuple[int, ...] = (), measure: bool = True) -> Plan | None:
    """The plan of ``settings`` (and of the alternatives asked for) on this machine.

    Args:
        settings: The run's settings (:class:`ablate.tune.RunSettings`); its space resolved for the data.
        results_dir: Where earlier runs (and pilots) of the protocol are looked for.
        workers: Trainings at once (default: this machine's CPUs over ``cpus_per_trial``, or ``max_concurrent``).
        designs: Factorial designs to compare (``balanced``, ``grid``).
        seed_counts: Seed counts of the ablation design to compare.
        measure: Time the models here when no earlier run of the protocol gives their times.

    Returns:
        The plan, or None when neither earlier models nor a record of the protocol exist (a pilot is needed).
    """
    from ablate.data import load_protocol_data
    from ablate.data.splits import SPLITS

    protocol = settings.protocol.with_overrides(macro=settings.macro)
    data = load_protocol_data(protocol, data_dir=settings.data_dir, device="cpu", seed=settings.seed)
    splits = {split: data.size(split) for split in SPLITS}
    history = earlier_runs(results_dir, settings.protocol, settings.macro, splits, exclude=settings.run_dir)
    noise = noise_model(history, settings.protocol, settings.macro, splits)
    if noise is None:
        return None
    times, per_config, time_source = _model_times(settings, protocol, data, history, measure)
    workers = workers or settings.max_concurrent or max(1, int((os.cpu_count() or 1) / settings.cpus_per_trial))
    fixed = median_fixed(history)
    plans = [plan_design(s, noise, times, workers, None if math.isnan(fixed) else fixed, splits.get("test"))
             for s in shapes(settings, designs, seed_counts, per_config)]
    return Plan(plans[0], tuple(plans[1:]), noise, time_source, per_config)


def matched_pairs(points: list[dict], axes) -> float:
    """The median over a design's contrasts (each choice against its axis's first) of the number of pairs of its
    points that differ in that axis alone: what a main effect rests on."""
    counts = []
    for axis in axes:
        settings = [tuple((a.name, p[a.name]) for a in axes if a.name != axis.name) for p in points]
        by_choice = {c: {s for s, p in zip(settings, points) if p[axis.name] == c} for c in axis.choices}
        counts += [len(by_choice[c] & by_choice[axis.choices[0]]) for c in axis.choices[1:]]
    return float(sorted(counts)[len(counts) // 2]) if counts else 0.0


def _design_configs(settings, design: str) -> list[str]:
    """The config strings a design trains under the run seed, and its baselines'."""
    from ablate.models import BASELINE_BY_TIMM_NAME

    if design == "ablation" and settings.space.reference is None:
        return []
    points = design_points(settings.space, design, settings.trials, settings.seed)
    return [str(settings.space.config(p)) for p in points] + \
        [str(BASELINE_BY_TIMM_NAME[t].block) for t in settings.space.baselines]


def _model_times(settings, protocol, data, history: History, measure: bool
                 ) -> tuple[dict[str, float], dict[str, float], str]:
    """Seconds of one candidate's and one baseline's training (medians over the run's own configs), each config's,
    and where they come from."""
    from ablate.models import BASELINE_BY_TIMM_NAME

    blocks = [settings.space.config(p) for p in design_points(settings.space, settings.design, settings.trials,
                                                               settings.seed)]
    baselines = [BASELINE_BY_TIMM_NAME[t].block for t in settings.space.baselines]
    known = {str(b): history.seconds[str(b)] for b in blocks + baselines if str(b) in history.seconds}
    measured: dict[str, ModelTime] = {}
    if measure:
        for block in blocks + baselines:
            if str(block) not in known:
                measured[str(block)] = measure_model(block, protocol, data, data.device)
    seconds = {**known, **{k: t.total for k, t in measured.items()}}
    candidate = statistics.median([seconds[str(b)] for b in blocks if str(b) in seconds] or [math.nan])
    baseline = statistics.median([seconds[str(b)] for b in baselines if str(b) in seconds] or [candidate])
    source = (f"{len(known)} configs' times from earlier runs" if known else "") + \
        (f"{', ' if known else ''}{len(measured)} configs timed here ({protocol.batch_size}-image steps)"
         if measured else "")
    return {Kind.CANDIDATE: candidate, Kind.BASELINE: baseline}, seconds, source or "no times"


def plan_line(plan: Plan | None) -> str:
    """The line a run prints before it trains."""
    if plan is None:
        return ("[ablate] plan: no earlier run or record of this protocol to predict what the run can detect "
                "(`run_ablation.py plan` runs a short pilot)")
    detect = "; ".join(f"≈ {v:.1f} pp per {k}" for k, v in plan.chosen.detectable.items() if math.isfinite(v))
    return (f"[ablate] plan: {plan.chosen.label}, {plan.chosen.trainings} trainings, ≈ {plan.chosen.seconds / 60:.1f} "
            f"min here; this run can detect {detect or 'nothing estimable'} (80 % power, α = 0.05/"
            f"{plan.chosen.family}; noise from {plan.noise.source})")

