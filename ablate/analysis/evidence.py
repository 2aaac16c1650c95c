"""Per-image evidence: intervals for accuracies and paired differences that include every source of noise.

A model's top-1 on a fixed evaluation set varies for two reasons: its training seed (init, data order,
augmentation) and the finite set of images (another sample of images would score differently). Seeds and images are
crossed — every seed's model is scored on the same images — so with ``c[s, i]`` the hit of seed ``s`` on image
``i``, the mean over S seeds and N images has (two-way random effects, method of moments)

    Var = σ²_seed / S + (σ²_image + σ²_residual / S) / N

``σ²_seed`` (the variance of a seed's whole-set accuracy beyond what its images explain) is estimated per config
from its seed × image table, ``(MS_seed − MS_residual) / N``, and pooled over the run's replicated configs (the
fresh confirmation seeds) so that a config seen under one seed still gets its seed noise. The image term is the
variance over images of the per-image seed means, divided by N, with one pseudo-image at each extreme so that it is
never zero on a finite set (two models that agree on every image still differ by less than one image, not by 0).

A difference of two models pairs them image by image (the same images, so what makes an image hard cancels):
``D_i = c̄_a[i] − c̄_b[i]``, ``Var = σ²_seed (1/S_a + 1/S_b) + var(D) / N``. Degrees of freedom are
Welch–Satterthwaite's, the interval and the two-sided p-value Student-t's (scipy.stats.t).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
METHOD = ("seeds × images: seed variance pooled over the run's replicated configs (σ²_seed = (MS_seed − "
          "MS_residual)/N per config), image variance of the per-image seed means (paired by image for a Δ, one "
          "pseudo-image at each extreme), Welch–Satterthwaite df, Student-t")


@dataclass(frozen=True)
class Estimate:
    """A mean (pp) or a paired difference with its standard error, t-interval and two-sided p-value.

    Attributes:
        estimate: Percentage points (a top-1, or a − b).
        se: Standard error in pp (NaN when the seed noise is not measured).
        df: Welch–Satterthwaite degrees of freedom.
        low: Lower end of the 95 % interval.
        high: Upper end of the 95 % interval.
        p_value: Two-sided t-test of 0 (meaningful for differences).
        n_seeds: Training seeds on each side (``(S,)`` for a mean, ``(S_a, S_b)`` for a difference).
        n_images: Images scored.
    """

    estimate: float
    se: float
    df: float
    low: float
    high: float
    p_value: float
    n_seeds: tuple[int, ...]
    n_images: int

    @property
    def has_ci(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def seeds_text(self) -> str:
        """``3 seeds`` or ``3 vs 3 seeds``."""
        return " vs ".join(str(s) for s in self.n_seeds) + f" seed{'s' if max(self.n_seeds, default=0) != 1 else ''}"


MISSING = Estimate(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, (), 0)


@dataclass(frozen=True)
class SeedVariance:
    """The pooled seed component of one split: ``var`` (fraction², per seed), its ``df`` and the ``configs`` pooled."""

    var: float
    df: int
    configs: int

    @property
    def measured(self) -> bool:
        return self.df > 0 and math.isfinite(self.var)


def seed_component(hits: np.ndarray) -> float:
    """``(MS_seed − MS_residual) / N`` of one config's seed × image table of hits (S ≥ 2), unclamped."""
    s, n = hits.shape
    rows, cols, grand = hits.mean(axis=1, keepdims=True), hits.mean(axis=0, keepdims=True), hits.mean()
    ms_seed = n * float(((rows - grand) ** 2).sum()) / (s - 1)
    ms_resid = float(((hits - rows - cols + grand) ** 2).sum()) / ((s - 1) * max(n - 1, 1))
    return (ms_seed - ms_resid) / n


def pooled_seed_variance(tables: list[np.ndarray]) -> SeedVariance:
    """Seed components of the tables with ≥ 2 seeds, pooled by their S − 1 degrees of freedom (clamped at 0)."""
    replicated = [t for t in tables if t.shape[0] >= 2]
    df = sum(t.shape[0] - 1 for t in replicated)
    if not df:
        return SeedVariance(math.nan, 0, 0)
    var = sum((t.shape[0] - 1) * seed_component(t) for t in replicated) / df
    return SeedVariance(max(var, 0.0), df, len(replicated))


def image_variance(per_image: np.ndarray, low: float, high: float) -> float:
    """Variance over images of per-image values, with one pseudo-image at each end of their range added."""
    return float(np.var(np.concatenate([per_image, [low, high]]), ddof=1))


def t_estimate(mean: float, parts: list[tuple[float, float]], n_seeds: tuple[int, ...], n_images: int,
               confidence: float = CONFIDENCE) -> Estimate:
    """An Estimate (pp) from a mean (fraction) and variance parts ``(variance, df)``: Satterthwaite's df, Student t."""
    var = sum(v for v, _ in parts)
    if not all(math.isfinite(v) for v, _ in parts) or var <= 0:
        return Estimate(100 * mean, math.nan, math.nan, math.nan, math.nan, math.nan, n_seeds, n_images)
    df = var ** 2 / sum(v ** 2 / d for v, d in parts if v > 0)
    se = math.sqrt(var)
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    p = float(2 * stats.t.sf(abs(mean) / se, df))
    return Estimate(100 * mean, 100 * se, df, 100 * (mean - half), 100 * (mean + half), p, n_seeds, n_images)


class Evidence:
    """The per-image hits of one evaluation split, as a seed × image table per (config, evidence group).

    The group is ``design`` (the run's own seed, which selects) or ``confirm`` (the fresh seeds that judge).

    Args:
        predictions: ``predictions.parquet`` rows (``name``, ``seed``, ``phase``, ``split``, ``image``,
            ``correct``); completed models only.
        split: The evaluation split (``test`` for verdicts: nothing selects on it).
    """

    def __init__(self, predictions: pd.DataFrame | None, split: str = "test"):
        self.split = split
        self.tables: dict[tuple[str, str], np.ndarray] = {}
        self.seeds: dict[tuple[str, str], list[int]] = {}
        if predictions is not None and len(predictions):
            self._index(predictions[predictions["split"] == split])
        confirm = [t for (_, g), t in self.tables.items() if g == "confirm"]
        self.seed_var = pooled_seed_variance(confirm or list(self.tables.values()))

    def _index(self, rows: pd.DataFrame) -> None:
        """One seed × image table per (config, group), cut out of the rows sorted once (numpy, no per-row Python)."""
        names, name_codes = np.unique(rows["name"].astype(str).to_numpy(), return_inverse=True)
        group_codes = (rows["phase"].astype(str).to_numpy() == "confirm").astype(np.int64)  # else the run's seed
        seeds, images = rows["seed"].to_numpy(dtype=np.int64), rows["image"].to_numpy(dtype=np.int64)
        hits = rows["correct"].to_numpy(dtype=float)
        order = np.lexsort((images, seeds, group_codes, name_codes))
        key = name_codes[order] * 2 + group_codes[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        for start, stop in zip(starts, np.r_[starts[1:], len(order)]):
            part = order[start:stop]
            seed_values = seeds[part]
            distinct = seed_values[np.r_[True, seed_values[1:] != seed_values[:-1]]]
            if len(part) % len(distinct):  # the seeds did not all score the same images
                continue
            name = str(names[name_codes[part[0]]])
            group = "confirm" if group_codes[part[0]] else "design"
            self.tables[(name, group)] = hits[part].reshape(len(distinct), -1)
            self.seeds[(name, group)] = distinct.tolist()

    def has(self, name: str, group: str) -> bool:
        return (name, group) in self.tables

    def n_images(self) -> int:
        return next(iter(self.tables.values())).shape[1] if self.tables else 0

    def accuracy(self, name: str, group: str) -> Estimate:
        """Top-1 (pp) of a config over its seeds in ``group``, with the interval of both noise sources."""
        hits = self.tables.get((name, group))
        if hits is None:
            return MISSING
        s, n = hits.shape
        parts = [(self.seed_var.var / s, self.seed_var.df), (image_variance(hits.mean(axis=0), 0.0, 1.0) / n, n - 1)]
        return t_estimate(float(hits.mean()), parts if self.seed_var.measured else [(math.nan, 1)], (s,), n)

    def difference(self, a: str, b: str, group: str, group_b: str | None = None) -> Estimate:
        """Top-1 of ``a`` minus ``b`` (pp), paired image by image, each over its own seeds."""
        ha, hb = self.tables.get((a, group)), self.tables.get((b, group_b or group))
        if ha is None or hb is None or ha.shape[1] != hb.shape[1]:
            return MISSING
        (sa, n), sb = ha.shape, hb.shape[0]
        diff = ha.mean(axis=0) - hb.mean(axis=0)
        parts = [(self.seed_var.var * (1 / sa + 1 / sb), self.seed_var.df), (image_variance(diff, -1.0, 1.0) / n, n - 1)]
        return t_estimate(float(diff.mean()), parts if self.seed_var.measured else [(math.nan, 1)], (sa, sb), n)
