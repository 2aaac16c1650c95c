"""The distinct networks among a space's points: a design never trains one network twice under one seed.

Two points of a space can build the same network (``relu-dwconv-w1`` and ``relu-dwconv-w1.001``: equal inner
channels), and a point can build a baseline's network (in ``pflayer``, ``relu-hybrid-w0.25`` is R50-hybrid). Their
trainings under one seed would be the same model twice, so a design keeps the first point of each network, drops a
point whose network a baseline already trains (the baseline's models stand for it), and says so; the run records the
aliases in run.json and the report names them. Networks are told apart by :func:`ablate.models.fingerprint`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ablate.models import BASELINE_BY_TIMM_NAME
from ablate.models.fingerprint import network_fingerprint

if TYPE_CHECKING:
    from ablate.space.searchspace import SearchSpace


def point_key(point: dict[str, Any]) -> str:
    """A point (axis → value) as text: what the searcher tracks proposals by."""
    return json.dumps(point, sort_keys=True, default=str)


@dataclass(frozen=True)
class Networks:
    """Which network each point of a space builds on one macro.

    Attributes:
        stands_for: Point key → the key of the point that trains its network (itself for the first point of each
            network), or ``baseline:<name>`` when a baseline trains it.
        aliases: Config name → the name its network is reported under, for every point that is a twin.
    """

    stands_for: dict[str, str]
    aliases: dict[str, str]

    def distinct(self, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``points`` without twins: each network's first point, none that a baseline trains."""
        return [p for p in points if self.stands_for.get(point_key(p), point_key(p)) == point_key(p)]

    def key(self, point: dict[str, Any]) -> str:
        """The key of the point (or baseline) that trains ``point``'s network."""
        return self.stands_for.get(point_key(point), point_key(point))


def space_networks(space: SearchSpace, macro: str) -> Networks:
    """The networks of every point of ``space`` (resolved, where its width is matched) and of its baselines.

    Args:
        space: The run's space.
        macro: The macro every model is built on.

    Returns:
        Which point (or baseline) trains each point's network, and the twins' aliases.
    """
    owner: dict[str, tuple[str, str]] = {}  # fingerprint → (key, name) of what trains it
    for timm_name in space.baselines:
        baseline = BASELINE_BY_TIMM_NAME[timm_name]
        owner.setdefault(network_fingerprint(baseline.block, macro), (f"baseline:{baseline.name}", baseline.name))
    stands_for, aliases = {}, {}
    for point in space.grid_points():
        key, name = point_key(point), str(space.config(point))
        first_key, first_name = owner.setdefault(network_fingerprint(name, macro), (key, name))
        stands_for[key] = first_key
        if first_key != key:
            aliases[name] = first_name
    return Networks(stands_for, aliases)
