"""One colour (and marker) per name for every figure of a report: the only place figures get their colours from.

Candidates' names — each axis's choices in the space file's order, then the configs a figure names, in the
leaderboard's order — take the coloured palette; baselines take a palette of greys of their own, so no baseline ever
shares a colour with a candidate or a choice. The same name has the same colour in every figure of a report.
"""

from __future__ import annotations

import matplotlib.colors as mcolors
import seaborn as sns

from ablate.analysis.axis_effects import choice_label
from ablate.core.schema import BASELINE_NAMES, Kind, of_kind
from ablate.report.data import Run

_TAB20 = sns.color_palette("tab20")
# tab20's saturated colours first, then their light partners; its two greys are left to the baselines' palette
CANDIDATE_PALETTE = tuple(mcolors.to_hex(c) for c in _TAB20[0::2] + _TAB20[1::2] if len(set(c)) > 1)
BASELINE_PALETTE = ("#000000", "#606060", "#a8a8a8", "#303030", "#888888")
BASELINE_MARKERS = ("s", "D", "^", "v", "P")
SHOWN_CONFIGS = 5  # configs named in a figure (the learning curves): the leaderboard's first five candidates


def shown_configs(run: Run) -> list[str]:
    """The candidate configs a figure names one by one: the leaderboard's first :data:`SHOWN_CONFIGS` (confirmed
    first, then by evidence top-1)."""
    summary = run.summary
    return of_kind(summary, Kind.CANDIDATE)["name"].head(SHOWN_CONFIGS).tolist()


def baseline_names(run: Run) -> list[str]:
    """The run's baselines in the catalogue's order (a baseline outside the catalogue after them)."""
    seen = set(of_kind(run.trials, Kind.BASELINE)["name"])
    return [n for n in BASELINE_NAMES if n in seen] + sorted(seen - set(BASELINE_NAMES))


def palette(run: Run) -> dict[str, str]:
    """Every name a figure of ``run`` colours, mapped to its colour (hex).

    Returns:
        Choices of every varying axis (as :func:`choice_label` writes them) and the configs of
        :func:`shown_configs` on :data:`CANDIDATE_PALETTE` (cycled, in order; each axis's choices are consecutive,
        so they differ within an axis), then the baselines on :data:`BASELINE_PALETTE`.
    """
    names: list[str] = []
    for axis in run.design_axes:
        given = [choice_label(c) for c in run.choice_orders.get(axis, [])]
        seen = sorted({choice_label(v) for v in run.candidates[axis].dropna()})
        names += [c for c in given if c in seen] + [c for c in seen if c not in given]
    names += shown_configs(run)
    colours = {}
    for name in dict.fromkeys(names):
        colours[name] = CANDIDATE_PALETTE[len(colours) % len(CANDIDATE_PALETTE)]
    for i, name in enumerate(baseline_names(run)):
        colours[name] = BASELINE_PALETTE[i % len(BASELINE_PALETTE)]
    return colours


def colour(colours: dict[str, str], name) -> str:
    """``name``'s colour in :func:`palette`; a name it does not hold (an axis the run did not vary) takes the
    candidates' first colour, never a baseline's."""
    return colours.get(choice_label(name), CANDIDATE_PALETTE[0])


def baseline_marker(run: Run, name: str) -> str:
    """A baseline's marker, the same in every figure."""
    names = baseline_names(run)
    return BASELINE_MARKERS[names.index(name) % len(BASELINE_MARKERS)] if name in names else "P"
