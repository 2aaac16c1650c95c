"""Per-image evidence: intervals for accuracies and paired differences that include every source of noise.

A model's top-1 on a fixed evaluation set varies for two reasons: its training seed (init, data order,
augmentation) and the finite set of images (another sample of images would score differently). Seeds and images are
crossed — every seed's model is scored on the same images — so with ``c[s, i]`` the hit of seed ``s`` on image
``i``, the mean over S seeds and N images has (two-way random effects, method of moments)

    Var = σ²_seed / S + (σ²_image + σ²_residual / S) / N

estimated as ``s² / S + (v − MS_residual / S) / N``: ``s²`` the variance of the S per-seed accuracies (S − 1 df),
``MS_residual`` the seed × image residual mean square, ``v`` the variance over images of the per-image seed means,
with one pseudo-image at each extreme so that it is never zero on a finite set (two models that agree on every image
still differ by less than one image, not by 0).

Each config's seed noise is its own: configs differ in how much their seeds scatter (on digits, recorded over 12
seeds each, from 0.8 pp for R50-hybrid to 3.4 pp for hardball-avgpool-w2), so one value pooled over the configs
understates the noisy ones. Splitting each config's 12 recorded models 3 vs 3 and comparing the halves (150 splits
per config) gave p < 0.05 in 15 % of all splits (34 % for the noisiest config) with one variance pooled over the
configs, 19 % for the noisiest with the pooled dispersion below, 15 % with limma's empirical-Bayes moderation towards
it (Smyth 2004), and 3.3 % of all splits, at most 6 % (9 of 150) for any config, with each config's own ``s²``
(``tests/test_seed_variance.py``). So every config with ≥ 2 seeds stands on its own seeds, and a comparison combines
the two sides Welch-style. Its price is degrees of freedom: on digits at 3 seeds a side a comparison detects about
7 pp instead of about 5.5 pp with a pooled variance; at 5 seeds, 4–5 pp either way. A config seen under one seed
(descriptive only: no verdict judges it) borrows the seed dispersion pooled over the replicated configs,
``s² / p̃(1 − p̃)`` averaged by their degrees of freedom and scaled back to its own accuracy (a top-1 near 100 %
cannot scatter as one near 90 % can).

A difference of two models pairs them image by image (the same images, so what makes an image hard cancels):
``D_i = c̄_a[i] − c̄_b[i]``, ``Var = s²_a / S_a + s²_b / S_b + (var(D) − MS_residual,a / S_a − MS_residual,b / S_b)
/ N``. The interval and the two-sided p-value are Student-t's (scipy.stats.t) on Welch–Satterthwaite degrees of
freedom, computed with each seed part at least the run's typical one (see ``Evidence._parts``: the plain rule is
liberal in the far tail, where a report's Holm steps test); an accuracy's interval is Wilson's on the effective number
of images, so it stays inside [0, 100] %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from ablate.analysis.twins import merge_twins
from ablate.core.schema import EVIDENCE_PHASES, EvidenceKind

CONFIDENCE = 0.95
METHOD = ("seeds × images: each config's own seed variance over its seeds (a single seed: the replicated configs' "
          "dispersion at its accuracy), image variance of the per-image seed means (paired by image for a Δ, one "
          "pseudo-image at each extreme), Welch–Satterthwaite df, Student-t; accuracies by Wilson's score on the "
          "effective number of images")
LARGE_DF = 1e6  # the df of a part estimated from thousands of cells: its own noise is negligible


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
class PooledDispersion:
    """The seed scatter of a split's replicated configs, for configs seen under a single seed.

    Dispersions rather than variances: an accuracy near 100 % cannot scatter as much as one near 90 % (a per-seed
    accuracy's variance is at most p(1 − p)), so each config's ``s²`` is divided by its own ``p̃(1 − p̃)`` before it
    is pooled, and a single-seed config's share is that dispersion times its own ``p̃(1 − p̃)``.

    Attributes:
        dispersion: ``s² / p̃(1 − p̃)`` averaged over the replicated configs, weighted by their S − 1.
        df: Σ (S − 1): its degrees of freedom.
        configs: Replicated configs (S ≥ 2) pooled.
        residual: Their mean ``MS_residual / N`` over ``p̃(1 − p̃)``: the image-level share of a seed's scatter.
    """

    dispersion: float
    df: int
    configs: int
    residual: float

    @property
    def measured(self) -> bool:
        return self.df > 0 and math.isfinite(self.dispersion)


NOT_POOLED = PooledDispersion(math.nan, 0, 0, math.nan)


def binomial_scale(hits: np.ndarray) -> float:
    """``p̃(1 − p̃)`` of a seed × image table, ``p̃`` pulled half a hit from 0 and 1: what its dispersion is in."""
    p = (float(hits.sum()) + 0.5) / (hits.size + 1.0)
    return p * (1.0 - p)


def seed_moments(hits: np.ndarray) -> tuple[float, float]:
    """``(s², MS_residual / N)`` of one config's seed × image table of hits (S ≥ 2): the variance of its per-seed
    accuracies, and the share of it that is seed × image noise."""
    s, n = hits.shape
    rows, cols, grand = hits.mean(axis=1, keepdims=True), hits.mean(axis=0, keepdims=True), hits.mean()
    s2 = float(((rows - grand) ** 2).sum()) / (s - 1)
    residual = float(((hits - rows - cols + grand) ** 2).sum()) / ((s - 1) * max(n - 1, 1))
    return s2, residual / n


def seed_component(hits: np.ndarray) -> float:
    """``(MS_seed − MS_residual) / N`` of one config's seed × image table (S ≥ 2), unclamped: its own σ²_seed."""
    s2, residual = seed_moments(hits)
    return s2 - residual


def pooled_dispersion(tables: list[np.ndarray]) -> PooledDispersion:
    """The seed dispersion of the tables with ≥ 2 seeds, pooled by their S − 1 degrees of freedom."""
    replicated = [t for t in tables if t.shape[0] >= 2]
    if not replicated:
        return NOT_POOLED
    scale = np.array([binomial_scale(t) for t in replicated])
    moments = np.array([seed_moments(t) for t in replicated]) / scale[:, None]
    d = np.array([t.shape[0] - 1 for t in replicated], dtype=float)
    return PooledDispersion(float((d * moments[:, 0]).sum() / d.sum()), int(d.sum()), len(replicated),
                            float(moments[:, 1].mean()))


def image_variance(per_image: np.ndarray, low: float, high: float) -> float:
    """Variance over images of per-image values, with one pseudo-image at each end of their range added."""
    return float(np.var(np.concatenate([per_image, [low, high]]), ddof=1))


def t_quantile(probability: float, df: float) -> float:
    """Student t's quantile: ``scipy.special.stdtrit``, which ``scipy.stats.t.ppf`` evaluates after checking its
    arguments (1 µs instead of 57: a simulated report computes hundreds)."""
    return float(special.stdtrit(df, probability))


def t_p_value(statistic: float, df: float) -> float:
    """The two-sided p-value of a t statistic: ``scipy.special.stdtr``, as ``scipy.stats.t.sf`` evaluates it."""
    return float(2 * special.stdtr(df, -abs(statistic)))


def satterthwaite(parts: list[tuple[float, float]]) -> tuple[float, float]:
    """The sum of variance parts ``(value, df)`` (a part may be negative: a subtracted mean square) and its
    Welch–Satterthwaite degrees of freedom."""
    var = sum(v for v, _ in parts)
    noise = sum(v ** 2 / d for v, d in parts if v)
    return var, (var ** 2 / noise if noise > 0 else math.inf)


def t_estimate(mean: float, parts: list[tuple[float, float]], n_seeds: tuple[int, ...], n_images: int,
               confidence: float = CONFIDENCE, bounded: bool = False,
               df_parts: list[tuple[float, float]] | None = None) -> Estimate:
    """An Estimate (pp) from a mean (fraction) and variance parts ``(variance, df)``: Satterthwaite's df, Student t.

    With ``bounded`` (a proportion) the interval is Wilson's score interval on the effective number of images
    ``p̃(1 − p̃) / Var`` (Kish's design effect: the seeds' and images' variance expressed as a sample size), with the
    t quantile: it never leaves [0, 100] % and stays sensible at 0 % or 100 %, where a symmetric interval would
    cross the bound and a logit one would explode.
    """
    if not parts or not all(math.isfinite(v) for v, _ in parts):
        return Estimate(100 * mean, math.nan, math.nan, math.nan, math.nan, math.nan, n_seeds, n_images)
    var, df = satterthwaite(parts)
    if df_parts is not None:
        df = satterthwaite(df_parts)[1]
    if var <= 0:
        return Estimate(100 * mean, math.nan, math.nan, math.nan, math.nan, math.nan, n_seeds, n_images)
    df = min(df, LARGE_DF)
    se = math.sqrt(var)
    t, p = t_quantile(0.5 + confidence / 2, df), t_p_value(mean / se, df)
    if bounded:  # Wilson's score interval on the effective number of images (Kish): inside (0, 1) by construction
        edge = 0.5 / max(n_images * max(n_seeds, default=1), 1)
        smoothed = min(max(mean, edge), 1 - edge)
        n_eff = smoothed * (1 - smoothed) / var
        centre = (mean + t * t / (2 * n_eff)) / (1 + t * t / n_eff)
        half = t * math.sqrt(mean * (1 - mean) / n_eff + t * t / (4 * n_eff * n_eff)) / (1 + t * t / n_eff)
        low, high = max(centre - half, 0.0), min(centre + half, 1.0)
    else:
        low, high = max(mean - t * se, -1.0), min(mean + t * se, 1.0)
    return Estimate(100 * mean, 100 * se, df, 100 * float(low), 100 * float(high), p, n_seeds, n_images)


class Evidence:
    """The per-image hits of one evaluation split, as a seed × image table per (config, evidence group).

    The group is ``design`` (the run's own seed, which selects) or ``confirm`` (the seeds that judge: fresh
    confirmation seeds, or every seed of an ablation design, where nothing selects). Twin
    configs (one network under two names) are one config here (:func:`ablate.analysis.twins.merge_twins`).

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
            self._index(merge_twins(predictions[predictions["split"] == split]))
        confirm = [t for (_, g), t in self.tables.items() if g == EvidenceKind.CONFIRMED]
        self.pooled = pooled_dispersion(confirm or list(self.tables.values()))

    def _index(self, rows: pd.DataFrame) -> None:
        """One seed × image table per (config, group), cut out of the rows sorted once (numpy, no per-row Python)."""
        names, name_codes = np.unique(rows["name"].astype(str).to_numpy(), return_inverse=True)
        group_codes = rows["phase"].astype(str).isin(EVIDENCE_PHASES).to_numpy().astype(np.int64)  # else run seed
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
            group = EvidenceKind.CONFIRMED if group_codes[part[0]] else EvidenceKind.RUN_SEED
            self.tables[(name, group)] = hits[part].reshape(len(distinct), -1)
            self.seeds[(name, group)] = distinct.tolist()

    def has(self, name: str, group: str) -> bool:
        return (name, group) in self.tables

    def n_images(self) -> int:
        return next(iter(self.tables.values())).shape[1] if self.tables else 0

    def seed_part(self, hits: np.ndarray) -> tuple[tuple[float, float], float]:
        """A config's seed part of the variance of its mean accuracy, ``(s² / S, df)`` — its own seeds' (S − 1 df),
        or for a single seed the pooled dispersion at its accuracy — and ``MS_residual / (N S)``, the seed × image
        noise that ``s²`` and the image part both hold, to be taken off the image part once.

        The subtraction goes to the image part (hundreds of degrees of freedom) rather than to ``s²`` (a few): a
        seed part that came out small is then still a seed part on its few degrees of freedom, never dropped as if
        the seed noise were known to be zero (which made the test liberal in its far tail).

        Raises:
            ValueError: a single-seed table and no replicated config to borrow from (check :meth:`measured`).
        """
        s = hits.shape[0]
        if s >= 2:
            (var, residual), df = seed_moments(hits), float(s - 1)
        elif self.pooled.measured:
            scale = binomial_scale(hits)
            var, residual, df = self.pooled.dispersion * scale, self.pooled.residual * scale, float(self.pooled.df)
        else:
            raise ValueError("a single-seed config's seed noise is unknown without a replicated config")
        return (var / s, df), residual / s

    def _parts(self, per_image: np.ndarray, low: float, high: float, *tables: np.ndarray
               ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The variance parts of a mean (one table) or a paired difference (two): each table's seed part, and the
        image part less the seed × image noise the seed parts already hold (never below zero); then the same parts
        with each seed part at least the pooled dispersion's at its accuracy, for the degrees of freedom only.

        Welch–Satterthwaite's df taken from the very estimates in the denominator is liberal in the far tail: a seed
        variance that came out small by chance also makes the df large, so the reference t is light-tailed exactly
        when the statistic is inflated (at 3 seeds a side, p < 0.001 came 2.2 times too often). Computing the df
        from a seed part that cannot fall below the run's typical one breaks that link, and errs to fewer df.
        """
        seed_parts, residuals = zip(*(self.seed_part(t) for t in tables))
        n = len(per_image)
        image = (max(image_variance(per_image, low, high) / n - sum(residuals), 0.0), n - 1)
        floors = [self._pooled_part(t) for t in tables]
        df_parts = [(max(v, floor), d) for (v, d), floor in zip(seed_parts, floors)]
        return [*seed_parts, image], [*df_parts, image]

    def _pooled_part(self, hits: np.ndarray) -> float:
        """The seed part a table would have with the run's pooled dispersion at its accuracy (0 when none)."""
        if not self.pooled.measured:
            return 0.0
        return self.pooled.dispersion * binomial_scale(hits) / hits.shape[0]

    def measured(self, *tables: np.ndarray) -> bool:
        """Whether the seed noise of every table is known: its own seeds, or the pool for a single seed."""
        return all(t.shape[0] >= 2 for t in tables) or self.pooled.measured

    def accuracy(self, name: str, group: str) -> Estimate:
        """Top-1 (pp) of a config over its seeds in ``group``, with the interval of both noise sources, inside
        [0, 100]."""
        hits = self.tables.get((name, group))
        if hits is None:
            return MISSING
        if not self.measured(hits):
            return t_estimate(float(hits.mean()), [], hits.shape[:1], hits.shape[1])
        s, n = hits.shape
        parts, df_parts = self._parts(hits.mean(axis=0), 0.0, 1.0, hits)
        return t_estimate(float(hits.mean()), parts, (s,), n, bounded=True, df_parts=df_parts)

    def difference(self, a: str, b: str, group: str, group_b: str | None = None) -> Estimate:
        """Top-1 of ``a`` minus ``b`` (pp), paired image by image, each over its own seeds with its own seed
        variance."""
        ha, hb = self.tables.get((a, group)), self.tables.get((b, group_b or group))
        if ha is None or hb is None or ha.shape[1] != hb.shape[1]:
            return MISSING
        (sa, n), sb = ha.shape, hb.shape[0]
        diff = ha.mean(axis=0) - hb.mean(axis=0)
        if not self.measured(ha, hb):
            return t_estimate(float(diff.mean()), [], (sa, sb), n)
        parts, df_parts = self._parts(diff, -1.0, 1.0, ha, hb)
        return t_estimate(float(diff.mean()), parts, (sa, sb), n, df_parts=df_parts)
