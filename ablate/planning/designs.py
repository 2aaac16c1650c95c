"""What each design would cost and could detect: trainings, projected wall time, and the detectable difference of
every kind of question in its family (80 % power, two-sided, α / m), from a noise model and per-model times."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from ablate.analysis.verdicts import ALPHA, detectable_difference
from ablate.core.schema import Kind
from ablate.planning.noise import NoiseModel
from ablate.planning.timing import wall_seconds


@dataclass(frozen=True)
class Shape:
    """A design's size: configs it trains under the run seed, the baselines, the training seeds of its judged
    models, how many configs are judged (confirmed; every one in an ablation), and the factorial effects it fits."""

    design: str
    configs: int
    baselines: int
    seeds: int
    judged: int
    effects: int = 0
    pairs: float = 0.0  # matched pairs behind a main effect (median over the contrasts)
    trainings: tuple[float, ...] = ()  # each training's seconds in submission order, where the configs are known
    rows: tuple[tuple[str, str], ...] = ()  # an ablation's (variant, reference) configs, then (reference, baseline)


@dataclass(frozen=True)
class DesignPlan:
    """One design's plan: ``trainings`` models, ``seconds`` of projected wall time, the detectable difference (pp)
    of each kind of comparison in its family of ``family`` (``None`` where the data cannot bound it), and notes."""

    label: str
    shape: Shape
    trainings: int
    seconds: float
    detectable: dict[str, float]
    family: int
    notes: tuple[str, ...] = ()

    @property
    def primary(self) -> float:
        """The number a design is chosen by: its ablation rows, else its axis effects."""
        return self.detectable.get("ablation row", self.detectable.get("axis effect", math.nan))


def trainings_of(shape: Shape, seconds: dict[str, float]) -> list[float]:
    """The seconds of the trainings a design submits, in the order the run submits them: its own configs' where
    the shape knows them, else the median candidate's and baseline's (an ablation submits everything at once, the
    longest first; the other designs their baselines, then Tune's trials, then the confirmations)."""
    if shape.trainings:
        return list(shape.trainings)
    if shape.design == "ablation":
        return sorted([seconds[Kind.CANDIDATE]] * shape.configs * shape.seeds
                      + [seconds[Kind.BASELINE]] * shape.baselines * shape.seeds, reverse=True)
    return ([seconds[Kind.BASELINE]] * shape.baselines * (shape.seeds + 1) + [seconds[Kind.CANDIDATE]] * shape.configs
            + [seconds[Kind.CANDIDATE]] * shape.judged * shape.seeds)


def plan_design(shape: Shape, noise: NoiseModel, seconds: dict[str, float], workers: int,
                fixed: float | None = None, n_images: int | None = None) -> DesignPlan:
    """The plan of one design.

    Args:
        shape: Its size.
        noise: The protocol's noise model.
        seconds: Seconds of one training of a ``candidate`` (the configs' median) and of a ``baseline``.
        workers: Trainings at once.
        fixed: The run's fixed seconds (earlier runs'), or None for the default.
        n_images: The evaluation split's size (default: the noise model's).
    """
    trainings = trainings_of(shape, seconds)
    wall = wall_seconds(trainings, workers, shape.configs + shape.baselines, fixed)
    se, df = noise.comparison(shape.seeds, shape.seeds, n_images)
    if shape.design == "ablation":
        family = (shape.configs - 1) + shape.baselines
        variants = [r for r in shape.rows[:shape.configs - 1]] or [None]
        baselines = [r for r in shape.rows[shape.configs - 1:]] or [None]
        detectable = {"ablation row": _median_detectable(noise, shape.seeds, n_images, True, variants, family),
                      "reference vs baseline": _median_detectable(noise, shape.seeds, n_images, False, baselines,
                                                                  family)}
        notes = ("an ablation sees each axis at the reference only (no interactions)",)
    else:
        family = shape.effects + shape.baselines * (1 if shape.judged else 0) + max(shape.judged - 1, 0)
        detectable = {"best candidate vs baseline": detectable_difference(se, df, ALPHA / family)} if shape.judged \
            else {}
        detectable["axis effect"] = _effect_bound(shape, noise, family, n_images)
        notes = ("axis effects: a lower bound — the axes' interactions, which no earlier run of this protocol "
                 "measured, widen it",)
    return DesignPlan(_label(shape), shape, len(trainings), wall, detectable, family, notes)


def _median_detectable(noise: NoiseModel, seeds: int, n_images: int | None, one_axis: bool,
                       pairs: list[tuple[str, str] | None], family: int) -> float:
    """The median over a kind's comparisons of their detectable differences (as the report states them)."""
    return statistics.median(detectable_difference(*noise.comparison(seeds, seeds, n_images, one_axis, pair),
                                                   ALPHA / family) for pair in pairs)


def _effect_bound(shape: Shape, noise: NoiseModel, family: int, n_images: int | None) -> float:
    """The detectable difference of one main effect from its matched pairs (one run-seed model per config), were
    the effect the same in every setting: the pairs' noise only (NaN below 3 pairs: not estimable)."""
    if shape.pairs < 3:
        return math.nan
    v = noise.accuracy * (1 - noise.accuracy)
    per_pair = 2 * noise.dispersion * v + noise.image_one_axis_or_any() * v / (n_images or noise.n_images)
    return detectable_difference(100 * math.sqrt(per_pair / shape.pairs), shape.pairs - 1, ALPHA / family)


def _label(shape: Shape) -> str:
    if shape.design == "ablation":
        return f"ablation, {shape.seeds} seeds"
    confirm = f", best {shape.judged} × {shape.seeds} seeds" if shape.judged else ""
    return f"{shape.design} {shape.configs}{confirm}"
