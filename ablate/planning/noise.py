"""The noise model a plan predicts detectable differences from, estimated from per-image evidence.

A comparison of two configs with S_a and S_b seeds on N images has (:mod:`ablate.analysis.evidence`)

    Var = φ v_a / S_a + φ v_b / S_b + κ v̄ / N

with ``v = p(1 − p)`` at the configs' accuracy, ``φ`` the seed dispersion (a per-seed accuracy's variance over
``p(1 − p)``), and ``κ v̄`` the between-config image variance of a pair's per-image difference (what makes an image
easy for one config and not the other; it does not shrink with seeds). All three are estimated from models already
trained on the protocol: earlier runs' ``predictions.parquet`` (their fresh-seed or ablation models), or a pilot.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ablate.analysis.evidence import Evidence, binomial_scale, satterthwaite, seed_moments
from ablate.core.schema import EvidenceKind


@dataclass(frozen=True)
class NoiseModel:
    """Attributes:
        dispersion: φ, pooled over the replicated configs.
        dispersion_df: Its degrees of freedom, Σ (S − 1).
        image: κ, the median over pairs of configs of their image variance over ``p̄(1 − p̄)``.
        image_one_axis: κ over the pairs that differ in one axis only (an ablation row's kind of pair: more alike
            than two arbitrary configs); NaN when the models hold no such pair.
        accuracy: p̄, the configs' median top-1 (fraction).
        n_images: Evaluation images of the split the model was estimated on.
        source: Where it comes from, for the plan's and the report's words.
        accuracies: Config string → its top-1 (fraction), for the configs the models hold: a comparison of known
            configs is predicted at their own accuracies (a config near 100 % scatters less).
        dispersions: Config string → ``(φ, S − 1)`` of each config the models hold: a known config is predicted
            with its own seed scatter, an unknown one with that pooled over the known configs of its kind (the
            space's configs, or the baselines — different networks, often differently noisy).
    """

    dispersion: float
    dispersion_df: int
    image: float
    image_one_axis: float
    accuracy: float
    n_images: int
    source: str
    accuracies: dict[str, float] = field(default_factory=dict)
    dispersions: dict[str, tuple[float, int]] = field(default_factory=dict)

    def dispersion_of(self, config: str) -> float:
        """φ of ``config``: its own where known, else pooled over the known configs of its kind, else over all."""
        if config in self.dispersions:
            return self.dispersions[config][0]
        baseline = _is_baseline(config)
        same = [v for c, v in self.dispersions.items() if _is_baseline(c) == baseline]
        df = sum(d for _, d in same)
        return sum(phi * d for phi, d in same) / df if df else self.dispersion

    def comparison(self, seeds_a: int, seeds_b: int, n_images: int | None = None, one_axis: bool = False,
                   configs: tuple[str, str] | None = None) -> tuple[float, float]:
        """The predicted standard error (pp) and Welch–Satterthwaite df of a paired Δ between two configs (two
        that differ in one axis only, with ``one_axis``; at their own accuracies where ``configs`` names known
        ones, else at p̄)."""
        n = n_images or self.n_images
        a, b = configs or ("", "")
        v_a, v_b = (p * (1 - p) for p in (self.accuracies.get(c, self.accuracy) for c in (a, b)))
        phi_a, phi_b = (self.dispersion_of(c) if configs else self.dispersion for c in (a, b))
        image = self.image_one_axis if one_axis and math.isfinite(self.image_one_axis) else self.image
        parts = [(phi_a * v_a / seeds_a, seeds_a - 1), (phi_b * v_b / seeds_b, seeds_b - 1),
                 (image * (v_a + v_b) / 2 / n, n - 1)]
        var, df = satterthwaite([(value, d if d > 0 else self.dispersion_df) for value, d in parts])
        return 100 * math.sqrt(var), df

    def image_one_axis_or_any(self) -> float:
        """κ of configs one axis apart where the models hold such pairs, else of any two configs."""
        return self.image_one_axis if math.isfinite(self.image_one_axis) else self.image

    def as_dict(self) -> dict:
        return asdict(self)


def estimate(predictions: list[pd.DataFrame], source: str, split: str = "test") -> NoiseModel | None:
    """The noise model of one or more runs' predictions (their judged models: fresh or ablation seeds); None when no
    config has two seeds."""
    tables, pairs, one_axis, accuracies, dispersions = [], [], [], {}, {}
    for frame in predictions:
        evidence = Evidence(frame, split)
        judged = {name: t for (name, group), t in evidence.tables.items()
                  if group == EvidenceKind.CONFIRMED and t.shape[0] >= 2}
        tables += list(judged.values())
        accuracies.update({_config(name): float(t.mean()) for name, t in judged.items()})
        dispersions.update({_config(name): (seed_moments(t)[0] / binomial_scale(t), t.shape[0] - 1)
                            for name, t in judged.items()})
        for a, b in itertools.combinations(sorted(judged), 2):
            pairs.append(_pair_image(judged[a], judged[b]))
            if _axes_apart(a, b) == 1:
                one_axis.append(pairs[-1])
    if not tables:
        return None
    scales = np.array([binomial_scale(t) for t in tables])
    phi = np.array([seed_moments(t)[0] for t in tables]) / scales
    d = np.array([t.shape[0] - 1 for t in tables], dtype=float)
    accuracy = float(np.median([t.mean() for t in tables]))
    v = accuracy * (1 - accuracy)
    return NoiseModel(float((d * phi).sum() / d.sum()), int(d.sum()), float(np.median(pairs)) / v if pairs else 0.0,
                      float(np.median(one_axis)) / v if one_axis else math.nan, accuracy, int(tables[0].shape[1]),
                      source, accuracies, dispersions)


def _is_baseline(config: str) -> bool:
    from ablate.models import BASELINES

    return config in {str(b) for b in BASELINES.values()}


def _config(name: str) -> str:
    """A model's config string (a baseline's by its block)."""
    from ablate.models import BASELINES

    return str(BASELINES[name]) if name in BASELINES else name


def _axes_apart(a: str, b: str) -> int | None:
    """How many axes two configs (names: config strings, or a baseline's name) differ in; None if either is not a
    config string of the three axes."""
    from ablate.models import BASELINES, BlockConfig

    try:
        x, y = (BASELINES.get(name) or BlockConfig.parse(name) for name in (a, b))
    except ValueError:
        return None
    return sum(getattr(x, axis) != getattr(y, axis) for axis in ("nonlinearity", "spatial", "width"))


def _pair_image(a: np.ndarray, b: np.ndarray) -> float:
    """The between-config image variance of two configs' per-image difference (the seed × image noise of each side
    taken off), never below 0."""
    diff = a.mean(axis=0) - b.mean(axis=0)
    residual = sum(seed_moments(t)[1] * t.shape[1] / t.shape[0] for t in (a, b))
    return max(float(np.var(diff, ddof=1)) - residual, 0.0)
