"""Iso-MAC widths: for a (nonlinearity, spatial) pair, the width whose network costs as many MACs as ResNet50's.

A space that writes ``width: {match: macs}`` (e.g. ``search_spaces/qlblock-iso.yaml``) compares blocks at equal
cost (as Radosavovic et al., "Designing Network Design Spaces", CVPR 2020, compare models): every pair gets the
width that puts its network, on the same macro, input size and classifier, within ±5 % of the MACs of the
ResNet50 baseline's (``relu-conv3x3-w0.25``). MACs are counted by ``ablate.costs`` (fvcore), never estimated by
formula.

Counting a ResNet50-macro network at 224² costs about a second, so the solver counts little:

1. MACs are a quadratic in the width (conv1 and conv3 are linear in the inner channels, a dense 3×3 conv is
   quadratic) whose constant (stem, projection skips, classifier) is the same for every block: it is fitted once
   from ResNet50's block at widths 1/8, 1/4, 1/2 (exact inner channels on every macro), then two counts per pair
   at 1/4 and 1/2 give the pair's quadratic exactly, which is solved for the target. Nonlinearities with the
   same conv1 width factor (relu, hardball) build the same convs and share the fit.
2. Those counts run at a *proxy* input, the smallest image that keeps every stride exact (32² for the 224²
   ResNet50 macro): each conv's MACs then shrink by the same factor, only the classifier does not, so
   MACs(full) is an increasing affine map of MACs(proxy) and the proxy solution is the full-size solution.
3. The width is rounded to 3 significant digits and counted once at the real input size; only if that count
   misses ±5 % does a secant refinement at the real size follow.

Results are cached per (pair, macro, classes, input size) for the life of the process.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

from ablate.core.errors import UsageError
from ablate.costs import count_macs
from ablate.models import (
    BASELINES,
    NONLINEARITIES,
    REFERENCE_BASELINE,
    BlockConfig,
    build_model,
)
from ablate.models.networks import STEMS, resolve_macro

TOLERANCE = 0.05  # |MACs / target − 1| a matched width may miss by
WIDTH_RANGE = (0.05, 16.0)  # the widths a match may choose from
FIT_WIDTHS = (0.125, 0.25, 0.5)  # exact inner channels on every shipped macro (output channels divisible by 8)
SIGNIFICANT_DIGITS = 3
MAX_REFINEMENTS = 6

InputSize = tuple[int, int, int]


@dataclass(frozen=True)
class MatchedWidth:
    """A solved width and the counts that justify it."""

    nonlinearity: str
    spatial: str
    width: float
    macs: int  # of the network with this width, at input_size
    target_macs: int  # of the ResNet50 baseline's network, at input_size
    macro: str
    input_size: InputSize

    @property
    def ratio(self) -> float:
        """MACs over the target's (1.0 is an exact match)."""
        return self.macs / self.target_macs

    @property
    def block(self) -> BlockConfig:
        """The block config with the solved width (its string carries the width, e.g. ``multiply-dwconv-w1.37``)."""
        return BlockConfig(self.nonlinearity, self.spatial, self.width)


@cache
def network_macs(block: BlockConfig, macro: str, num_classes: int, input_size: InputSize) -> int:
    """MACs of ``build_model(block, macro, num_classes)`` for one ``input_size`` image (cached)."""
    return count_macs(build_model(block, macro, num_classes), input_size)


def proxy_input_size(macro: str, input_size: InputSize) -> InputSize:
    """The smallest input that shrinks every feature map of ``macro`` by the same factor, or the input itself.

    Args:
        macro: A ``MACROS`` name.
        input_size: (channels, height, width) the network will see.

    Returns:
        (channels, height / f, width / f) for the largest f that divides both sides into whole multiples of the
        macro's total stride; ``input_size`` when no f > 1 does.
    """
    config = resolve_macro(macro)
    stride = STEMS[config.stem].reduction * math.prod(config.stage_strides())
    channels, height, width = input_size
    if height % stride or width % stride:
        return input_size
    factor = math.gcd(height // stride, width // stride)
    return channels, height // factor, width // factor


def round_significant(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """``value`` rounded to ``digits`` significant digits (1.3749 → 1.37)."""
    return float(f"{value:.{digits}g}")


def width_free_macs(macro: str, num_classes: int, input_size: InputSize) -> float:
    """The MACs no width changes (stem, projection skips, classifier), the same for every block config.

    The constant of the quadratic through ResNet50's block at ``FIT_WIDTHS`` (whose counts the target shares).
    """
    baseline = BASELINES[REFERENCE_BASELINE]
    macs = [network_macs(dataclasses.replace(baseline, width=w), macro, num_classes, input_size) for w in FIT_WIDTHS]
    return float(np.polyfit(FIT_WIDTHS, macs, 2)[2])


def fit_quadratic(widths: tuple[float, float], macs: list[int], constant: float) -> tuple[float, float]:
    """(c1, c2) of MACs = constant + c1·w + c2·w² through two counted points."""
    lhs = np.array([[w, w * w] for w in widths])
    c1, c2 = np.linalg.solve(lhs, np.array(macs, dtype=float) - constant)
    return float(c1), float(c2)


def solve_fit(constant: float, c1: float, c2: float, target: int) -> float | None:
    """The width in ``WIDTH_RANGE`` at which constant + c1·w + c2·w² reaches ``target``, or None."""
    roots = np.roots([c2, c1, constant - target]) if abs(c2) > 1e-9 * abs(c1) else np.array([(target - constant) / c1])
    low, high = WIDTH_RANGE
    inside = [float(r.real) for r in np.atleast_1d(roots) if abs(r.imag) < 1e-9 and low <= r.real <= high]
    return min(inside) if inside else None


def _unreachable(nonlinearity: str, spatial: str, macro: str, fit: tuple[float, float, float], target: int,
                 scale: float) -> UsageError:
    """The one-line error for a pair no width in ``WIDTH_RANGE`` matches, with the closest MACs it reaches."""
    constant, c1, c2 = fit
    ends = {w: (constant + c1 * w + c2 * w * w) * scale for w in WIDTH_RANGE}
    width, closest = min(ends.items(), key=lambda item: abs(item[1] - target * scale))
    return UsageError(
        f"cannot match MACs for {nonlinearity} × {spatial} on macro {macro!r}: the closest is ≈{closest / 1e6:.4g} M "
        f"MACs at width {width:g} against ResNet50's {target * scale / 1e6:.4g} M; drop the pair from the space "
        f"or give width choices instead of match")


def _refine(count: Callable[[float], int], width: float, macs: int, target: int) -> tuple[float, int]:
    """Secant steps on the real count from (width, macs) until within TOLERANCE; the closest point if none is."""
    points = [(width, macs)]
    guess = round_significant(width * math.sqrt(target / macs))  # MACs grow between linearly and quadratically
    for _ in range(MAX_REFINEMENTS):
        points.append((guess, count(guess)))
        if abs(points[-1][1] / target - 1) <= TOLERANCE:
            break
        (w0, m0), (w1, m1) = points[-2], points[-1]
        if m1 == m0:
            break
        step = w1 + (target - m1) * (w1 - w0) / (m1 - m0)
        guess = round_significant(min(max(step, w1 / 2, WIDTH_RANGE[0]), 2 * w1, WIDTH_RANGE[1]))  # no wild jumps
    return min(points, key=lambda p: abs(p[1] / target - 1))


_FITS: dict[tuple, tuple[float, float, float]] = {}


def proxy_fit(nonlinearity: str, spatial: str, macro: str, num_classes: int,
              proxy: InputSize) -> tuple[float, float, float]:
    """(constant, c1, c2) of MACs(width) = constant + c1·w + c2·w² for a pair at the proxy input (cached).

    Nonlinearities that give conv1 the same width factor build the same convs, so they share one fit (relu and
    hardball do); the fit only proposes the width, which the full-size count then checks for every pair.
    """
    key = (NONLINEARITIES[nonlinearity].conv1_factor, spatial, macro, num_classes, proxy)
    if key not in _FITS:
        constant = width_free_macs(macro, num_classes, proxy)
        macs = [network_macs(BlockConfig(nonlinearity, spatial, w), macro, num_classes, proxy) for w in FIT_WIDTHS[1:]]
        _FITS[key] = (constant, *fit_quadratic(FIT_WIDTHS[1:], macs, constant))
    return _FITS[key]


@cache
def match_macs(nonlinearity: str, spatial: str, macro: str, num_classes: int, input_size: InputSize) -> MatchedWidth:
    """The width at which a (nonlinearity, spatial) network's MACs are within ±5 % of ResNet50's (cached).

    Args:
        nonlinearity: A ``NONLINEARITIES`` name.
        spatial: A ``SPATIAL_OPS`` name.
        macro: A ``MACROS`` name; candidate and baseline are both built on it.
        num_classes: Classifier outputs (the same for both).
        input_size: (channels, height, width) the networks are counted at.

    Returns:
        The solved width (3 significant digits) with its MACs and the target's.

    Raises:
        UsageError: no width in ``WIDTH_RANGE`` comes within ±5 % (one line, naming the pair and the closest MACs).
    """
    input_size = tuple(input_size)
    baseline = BASELINES[REFERENCE_BASELINE]
    proxy = proxy_input_size(macro, input_size)
    target = network_macs(baseline, macro, num_classes, input_size)
    proxy_target = network_macs(baseline, macro, num_classes, proxy)

    def count(width: float, size: InputSize = input_size) -> int:
        return network_macs(BlockConfig(nonlinearity, spatial, width), macro, num_classes, size)

    fit = proxy_fit(nonlinearity, spatial, macro, num_classes, proxy)
    width = solve_fit(*fit, proxy_target)
    if width is None:
        raise _unreachable(nonlinearity, spatial, macro, fit, proxy_target, target / proxy_target)
    width = round_significant(width)
    macs = count(width)
    if abs(macs / target - 1) > TOLERANCE:
        width, macs = _refine(count, width, macs, target)
    if abs(macs / target - 1) > TOLERANCE:
        raise UsageError(f"cannot match MACs for {nonlinearity} × {spatial} on macro {macro!r}: the closest is "
                         f"{macs / 1e6:.4g} M MACs at width {width:g} against ResNet50's {target / 1e6:.4g} M")
    return MatchedWidth(nonlinearity, spatial, width, macs, target, macro, input_size)

