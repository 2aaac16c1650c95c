"""Experiment designs over a space's sampled axes: which configs to train so that axis effects can be estimated.

``balanced_design`` picks N distinct points in which every choice of every axis appears ⌊N/k⌋ or ⌈N/k⌉ times
and, for every pair of axes, the pair counts are as even as N allows (Radosavovic et al., "On Network Design
Spaces for Visual Recognition", ICCV 2019). It starts from balanced columns (each axis's choices repeated
cyclically, then shuffled), which fixes the marginal counts, and only ever swaps two entries of one column,
which keeps them fixed; a seeded simulated annealing minimises the pair-count imbalance (Σ of squared pair
counts, lowest exactly when all counts of a pair differ by at most 1) plus a heavy penalty on repeated rows,
and stops as soon as it reaches the lower bound.

Achievable (checked empirically; tests/test_design.py pins it): on the shipped spaces (qlblock 3×4×3, pflayer 4×2,
full 3×6×5) and on 2×3×4, 4×4×4, 3×3×3×2 and 5×7, every pair of axes is spread evenly (counts within 1) for every N
from 1 to the space size. When N is more than half the space, the design is the complement of an even design of
the rest (the full grid's pair counts are all equal, so the complement is just as even), which the annealer finds
far more easily than a near-full design. Not always achievable with many axes and few points: five 2-choice axes
admit no even spread of all ten pairs for N = 3, 4, 5 (nor 27, 28, 29), shown by enumerating every subset (an
orthogonal-array bound: at most 3 mutually balanced 2-level columns fit in 4 rows); there, and in any other such
case, the most even design found is returned (for five binary axes: pairs within 2).
"""

from __future__ import annotations

import itertools
import math
import numbers
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ablate.space import Axis, SearchSpace

DUPLICATE_PENALTY = 1000  # per pair of identical rows: far above any pair-imbalance a swap can fix
ITERATIONS_PER_POINT = 300  # annealing budget: max(MIN_ITERATIONS, this × N) swaps
MIN_ITERATIONS = 6000
START_TEMPERATURE = 2.0
END_TEMPERATURE = 0.05


def grid_design(axes: Sequence[Axis]) -> list[dict[str, Any]]:
    """Every point of the axes' product, in the axes' order.

    Args:
        axes: The sampled axes (``ablate.space.Axis``).

    Returns:
        One dict axis name → value per point.
    """
    names = [a.name for a in axes]
    return [dict(zip(names, values)) for values in itertools.product(*(a.choices for a in axes))]


def balanced_design(axes: Sequence[Axis], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` distinct points with balanced choice counts and evenly spread pairs of axes.

    Args:
        axes: The sampled axes (``ablate.space.Axis``); their ``choices`` are the values drawn.
        n: How many points, between 1 and the size of the axes' product.
        seed: Seeds the shuffles and the annealing; the same seed gives the same design.

    Returns:
        ``n`` dicts axis name → value, all different, in a seeded order.

    Raises:
        ValueError: ``n`` outside 1 … the number of points.
    """
    sizes = [len(a.choices) for a in axes]
    total = math.prod(sizes)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= n <= total:
        raise ValueError(f"a balanced design needs n between 1 and the space's {total} points, got {n!r}")
    n, rng = int(n), random.Random(seed)
    if 2 * n <= total:
        rows = _annealed_rows(sizes, n, rng)
    else:  # the complement of an even design is even (the full grid's pair counts are all equal), and smaller
        left_out = set(_annealed_rows(sizes, total - n, rng))
        rows = [row for row in itertools.product(*(range(k) for k in sizes)) if row not in left_out]
        rng.shuffle(rows)
    return [{a.name: a.choices[i] for a, i in zip(axes, row)} for row in rows]


def _annealed_rows(sizes: list[int], n: int, rng: random.Random) -> list[tuple[int, ...]]:
    """``n`` distinct rows of choice indices, balanced by annealing from balanced columns (none when n is 0)."""
    if n == 0:
        return []
    if not sizes:
        return [()]
    columns = [balanced_column(k, n, rng) for k in sizes]
    return list(zip(*_Annealer(columns, sizes, rng).run()))


def balanced_column(k: int, n: int, rng: random.Random) -> list[int]:
    """``n`` choice indices of a ``k``-choice axis, each ⌊n/k⌋ or ⌈n/k⌉ times, in a seeded order.

    Which choices get the extra count is drawn too, so that no choice is favoured by its place in the file.

    Args:
        k: The number of choices.
        n: The column length.
        rng: The design's random generator.

    Returns:
        The column.
    """
    order = list(range(k))
    rng.shuffle(order)
    column = [order[i % k] for i in range(n)]
    rng.shuffle(column)
    return column


def even_sum_of_squares(n: int, cells: int) -> int:
    """The least Σ c² of ``cells`` non-negative integer counts summing to ``n`` (all within 1 of each other)."""
    q, r = divmod(n, cells)
    return r * (q + 1) ** 2 + (cells - r) * q ** 2


def pair_counts(design: Sequence[dict[str, Any]], first: Axis, second: Axis) -> dict[tuple[Any, Any], int]:
    """How often each (first choice, second choice) occurs in a design, zeros included.

    Args:
        design: Points as returned by ``balanced_design``.
        first: One axis.
        second: Another axis.

    Returns:
        (choice of first, choice of second) → count, for every pair of choices.
    """
    seen = Counter((p[first.name], p[second.name]) for p in design)
    return {(a, b): seen[(a, b)] for a in first.choices for b in second.choices}


@dataclass
class _Annealer:
    """Simulated annealing over within-column swaps; the columns hold choice indices and change in place."""

    columns: list[list[int]]
    sizes: list[int]
    rng: random.Random
    pairs: list[tuple[int, int]] = field(init=False)
    counts: dict[tuple[int, int], list[int]] = field(init=False)
    rows: Counter = field(init=False)

    def __post_init__(self) -> None:
        self.pairs = list(itertools.combinations(range(len(self.columns)), 2))
        self.counts = {(a, b): [0] * (self.sizes[a] * self.sizes[b]) for a, b in self.pairs}
        for a, b in self.pairs:
            for x, y in zip(self.columns[a], self.columns[b]):
                self.counts[(a, b)][self._cell(a, b, x, y)] += 1
        self.rows = Counter(self._row(r) for r in range(len(self.columns[0])))

    def _cell(self, a: int, b: int, x: int, y: int) -> int:
        return x * self.sizes[b] + y

    def _row(self, r: int) -> tuple[int, ...]:
        return tuple(column[r] for column in self.columns)

    def cost(self) -> int:
        """Σ over pairs of axes of Σ squared pair counts, plus the duplicate-row penalty."""
        spread = sum(c * c for counts in self.counts.values() for c in counts)
        duplicates = sum(c * (c - 1) // 2 for c in self.rows.values())
        return spread + DUPLICATE_PENALTY * duplicates

    def lower_bound(self) -> int:
        """The cost of a design whose every pair of axes is spread evenly and whose rows are distinct."""
        n = len(self.columns[0])
        return sum(even_sum_of_squares(n, self.sizes[a] * self.sizes[b]) for a, b in self.pairs)

    def _swapped(self, axis: int, r: int, value: int) -> tuple[int, ...]:
        row = list(self._row(r))
        row[axis] = value
        return tuple(row)

    def _pair_count_of(self, a: int, b: int, axis: int) -> Callable[[int, int], int]:
        """The count of pair (a, b) at (value of ``axis``, value of the other axis)."""
        counts, width = self.counts[(a, b)], self.sizes[b]
        if a == axis:
            return lambda v, x: counts[v * width + x]
        return lambda v, x: counts[x * width + v]

    def _pair_delta(self, axis: int, i: int, j: int) -> int:
        """Change of the pair term if rows i and j swapped their entries of ``axis``."""
        vi, vj, delta = self.columns[axis][i], self.columns[axis][j], 0
        for a, b in self.pairs:
            if axis not in (a, b):
                continue
            other = b if a == axis else a
            xi, xj = self.columns[other][i], self.columns[other][j]
            if xi == xj:
                continue  # both rows keep their pair of values, only swapped between them
            count = self._pair_count_of(a, b, axis)
            # cells (vi, xi) and (vj, xj) lose one row each, (vj, xi) and (vi, xj) gain one: Δc² = ∓2c + 1
            delta += 2 * (count(vj, xi) + count(vi, xj) - count(vi, xi) - count(vj, xj)) + 4
        return delta

    def _duplicate_delta(self, axis: int, i: int, j: int) -> int:
        """Change of the duplicate term (identical-row pairs × penalty) if rows i and j swapped ``axis``."""
        old_i, old_j = self._row(i), self._row(j)
        new_i, new_j = self._swapped(axis, i, old_j[axis]), self._swapped(axis, j, old_i[axis])
        removed = (self.rows[old_i] - 1) + (self.rows[old_j] - 1)
        added_i = self.rows[new_i] - (new_i == old_j)
        added_j = self.rows[new_j] - (new_j == old_i)
        return DUPLICATE_PENALTY * (added_i + added_j - removed)

    def _swap(self, axis: int, i: int, j: int) -> None:
        """Swap two entries of one column and update the pair and row counts."""
        touched = [(a, b) for a, b in self.pairs if axis in (a, b)]
        for step in (-1, 1):
            if step == 1:
                column = self.columns[axis]
                column[i], column[j] = column[j], column[i]
            for r in (i, j):
                self.rows[self._row(r)] += step
                for a, b in touched:
                    self.counts[(a, b)][self._cell(a, b, self.columns[a][r], self.columns[b][r])] += step

    def run(self) -> list[list[int]]:
        """Anneal until the lower bound is reached or the budget is spent; the best columns seen."""
        n = len(self.columns[0])
        movable = [a for a, k in enumerate(self.sizes) if k > 1]
        cost, bound = self.cost(), self.lower_bound()
        best, best_cost = [list(c) for c in self.columns], cost
        iterations = max(MIN_ITERATIONS, ITERATIONS_PER_POINT * n)
        cooling = (END_TEMPERATURE / START_TEMPERATURE) ** (1 / iterations)
        temperature = START_TEMPERATURE
        for _ in range(iterations):
            if best_cost <= bound or not movable:
                break
            temperature *= cooling
            axis = self.rng.choice(movable)
            i, j = self.rng.randrange(n), self.rng.randrange(n)
            if self.columns[axis][i] == self.columns[axis][j]:
                continue
            delta = self._pair_delta(axis, i, j) + self._duplicate_delta(axis, i, j)
            if delta > 0 and self.rng.random() >= math.exp(-delta / temperature):
                continue
            self._swap(axis, i, j)
            cost += delta
            if cost < best_cost:
                best, best_cost = [list(c) for c in self.columns], cost
        return best


def ablation_design(axes: Sequence[Axis], reference: dict[str, Any]) -> list[dict[str, Any]]:
    """The reference point, then every point that changes exactly one axis from it (one factor at a time, in the
    axes' and choices' order): with axes of k₁, k₂, … choices, 1 + Σ (kᵢ − 1) points (qlblock: 1 + 2 + 3 + 2).

    Args:
        axes: The sampled axes.
        reference: The reference point (axis → value; each value one of its axis's choices).

    Returns:
        The points, the reference first.
    """
    variants = [{**reference, axis.name: choice} for axis in axes for choice in axis.choices
                if choice != reference[axis.name]]
    return [dict(reference), *variants]


def startup_trials(trials: int) -> int:
    """How many trials a sampler spends before it models the results (TPE's start-up, NSGA-II's first population)."""
    return min(trials, 10, max(2, trials // 2))


DESIGN_POINTS: dict[str, Callable[[SearchSpace, int, int], list[dict[str, Any]]]] = {
    "ablation": lambda space, trials, seed: ablation_design(space.axes, space.reference),
    "grid": lambda space, trials, seed: space.grid_points(),
    "balanced": lambda space, trials, seed: balanced_design(space.axes, trials, seed),
    "search": lambda space, trials, seed: balanced_design(space.axes, startup_trials(trials), seed),
}


def design_points(space: SearchSpace, design: str, trials: int, seed: int) -> list[dict[str, Any]]:
    """The configs a run's design fixes before any result is in (axis → value), trained first and to the full budget.

    ``ablation``: the space's reference and every config that changes one axis from it; ``grid``: every config;
    ``balanced``: ``trials`` configs with every choice (and pair of choices) about equally often; ``search``: a
    balanced core of the sampler's start-up size, after which the sampler takes over.
    """
    return DESIGN_POINTS[design](space, trials, seed)
