"""The ``SearchSpace``: sampled axes, fixed values, macros, baselines, objectives, design, and widths solved to a
cost; configs, grid points and Optuna's define-by-run sampling come from it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ablate.models import BASELINE_IDS, BlockConfig
from ablate.space.design import grid_design
from ablate.space.objectives import DEFAULT_OBJECTIVES, Objective

if TYPE_CHECKING:
    from ablate.plugins import Plugin
    from ablate.space.isomacs import MatchedWidth

DEFAULT_DESIGN = "search"


@dataclass(frozen=True)
class WidthMatch:
    """A cost the width can be solved to match instead of being sampled (``width: {match: NAME}``)."""

    solve: Callable[[str, str, str, int, tuple[int, int, int]], MatchedWidth]  # (nl, spatial, macro, classes, input)
    description: str


def _match_macs(nonlinearity: str, spatial: str, macro: str, num_classes: int,
                input_size: tuple[int, int, int]) -> MatchedWidth:
    """``ablate.space.isomacs.match_macs``, imported on first use: only spaces that match a cost need fvcore."""
    from ablate.space.isomacs import match_macs

    return match_macs(nonlinearity, spatial, macro, num_classes, tuple(input_size))


WIDTH_MATCHES: dict[str, WidthMatch] = {
    "macs": WidthMatch(_match_macs, "the width at which the network's MACs are within ±5 % of ResNet50's"),
}


@dataclass(frozen=True)
class Axis:
    name: str
    choices: tuple[Any, ...]


@dataclass(frozen=True)
class SearchSpace:
    """A loaded space file: its sampled axes, fixed values, macros, baselines, objectives and default design.

    With ``width: {match: macs}`` the width is not sampled: ``width_match`` names the cost it is solved to
    match, and ``resolved(macro, num_classes, input_size)`` returns the copy whose ``matched`` holds the solved
    width of every (nonlinearity, spatial) pair, which ``config`` then fills in.
    """

    name: str
    path: Path
    description: str
    axes: tuple[Axis, ...]  # the sampled axes only
    fixed: dict[str, Any] = field(default_factory=dict)
    macros: dict[str, str] = field(default_factory=dict)  # protocol name (or "default") → macro
    baselines: tuple[str, ...] = tuple(BASELINE_IDS)
    objectives: tuple[Objective, ...] = DEFAULT_OBJECTIVES
    design: str = DEFAULT_DESIGN  # one of DESIGNS
    width_match: str | None = None  # a WIDTH_MATCHES name when the width is solved, not sampled
    matched: dict[tuple[str, str], MatchedWidth] = field(default_factory=dict)  # (nl, spatial) → solved width
    plugins: tuple[Plugin, ...] = ()  # the modules the file names (``plugins:``), imported before its axes are checked
    reference: dict[str, Any] | None = None  # the ablation design's reference point (axis → value), if any

    @property
    def size(self) -> int:
        size = 1
        for axis in self.axes:
            size *= len(axis.choices)
        return size

    def block_of(self, params: dict[str, Any]) -> BlockConfig:
        """The block of a trial's config: its axes' values (other keys, such as ``phase``, ignored)."""
        return self.config({a.name: params[a.name] for a in self.axes})

    def config(self, values: dict[str, Any]) -> BlockConfig:
        """The block at one point (axis → value), the fixed values and, on a matched space, the solved width.

        Raises:
            ValueError: the width is matched but the space has not been resolved.
        """
        values = {**self.fixed, **values}
        if self.width_match is not None:
            values["width"] = self._matched_width(values)
        return BlockConfig(**values)

    def _matched_width(self, values: dict[str, Any]) -> float:
        if not self.matched:
            raise ValueError(f"space {self.name!r} solves its width to match {self.width_match}: call "
                             f"space.resolved(macro, num_classes, input_size) and use the copy it returns")
        pair = _pair(values)
        if pair not in self.matched:
            raise ValueError(f"space {self.name!r} has no solved width for {pair[0]} × {pair[1]}: it is not a point "
                             f"of the space")
        return self.matched[pair].width

    def pairs(self) -> list[tuple[str, str]]:
        """The distinct (nonlinearity, spatial) pairs of the space's points, in grid order."""
        return list(dict.fromkeys(_pair({**self.fixed, **point}) for point in self.grid_points()))

    def resolved(self, macro: str, num_classes: int, input_size: tuple[int, int, int]) -> SearchSpace:
        """The space with every matched width solved for one macro, classifier and input size.

        Args:
            macro: A ``MACROS`` name (the one the run builds its networks on).
            num_classes: Classifier outputs.
            input_size: (channels, height, width) of the run's images.

        Returns:
            ``self`` when the width is not matched; otherwise a copy whose ``matched`` maps every
            (nonlinearity, spatial) pair to its solved width (cached per process).

        Raises:
            UsageError: a pair no width can match (one line naming it and the closest MACs reached).
        """
        if self.width_match is None:
            return self
        solve = WIDTH_MATCHES[self.width_match].solve
        matched = {pair: solve(*pair, macro, num_classes, tuple(input_size)) for pair in self.pairs()}
        return dataclasses.replace(self, matched=matched)

    def suggest_values(self, trial: Any) -> dict[str, Any]:
        """One categorical parameter per sampled axis, named after it, from an ``optuna.Trial`` (the searcher's
        define-by-run sampling)."""
        return {a.name: trial.suggest_categorical(a.name, list(a.choices)) for a in self.axes}

    def point_of(self, config: BlockConfig | str) -> dict[str, Any]:
        """The point (axis → value) of a config string, checked against the space.

        Raises:
            ValueError: the config is not a point of the space (a value outside an axis's choices, or a fixed value
                it does not share), in one line naming the first mismatch.
        """
        block = BlockConfig.coerce(config)
        values = {"nonlinearity": block.nonlinearity, "spatial": block.spatial, "width": block.width}
        for axis, value in self.fixed.items():
            if values[axis] != value:
                raise ValueError(f"{block} is not a point of space {self.name!r}: its {axis} is fixed to {value}")
        point = {}
        for axis in self.axes:
            value = values[axis.name]
            if value not in axis.choices:
                raise ValueError(f"{block} is not a point of space {self.name!r}: {axis.name} {value!r} is not one "
                                 f"of {', '.join(map(str, axis.choices))}")
            point[axis.name] = value
        return point

    def point_name(self, point: dict[str, Any]) -> str:
        """A point as its config string, or as ``axis=value, …`` while a matched width is not solved yet."""
        try:
            return str(self.config(point))
        except ValueError:
            return ", ".join(f"{axis}={value}" for axis, value in point.items())

    def grid_points(self) -> list[dict[str, Any]]:
        """Every point of the space as axis → value (the parameters an Optuna trial would suggest)."""
        return grid_design(self.axes)

    def grid(self) -> list[BlockConfig]:
        """Every point of the space, in the file's order."""
        return [self.config(point) for point in self.grid_points()]

    def grid_search_space(self) -> dict[str, list[Any]]:
        """The axes as Optuna's ``GridSampler`` wants them."""
        return {a.name: list(a.choices) for a in self.axes}

    def macro_for(self, protocol_name: str, protocol_macro: str) -> str:
        """The macro to use under a protocol: the space's entry for it, its default, or the protocol's own."""
        return self.macros.get(protocol_name, self.macros.get("default", protocol_macro))


def _pair(values: dict[str, Any]) -> tuple[str, str]:
    """(nonlinearity, spatial) of a point, BlockConfig's defaults where the point names neither."""
    probe = BlockConfig(**{**values, "width": 1.0})
    return probe.nonlinearity, probe.spatial


def config_hash(config: BlockConfig, macro: str = "") -> str:
    """A short stable hash of a block config (and macro): equal configs hash equal whatever their spelling."""
    canonical = json.dumps({"nonlinearity": config.nonlinearity, "spatial": config.spatial,
                            "width": float(config.width), "macro": macro}, sort_keys=True)
    return hashlib.sha1(canonical.encode()).hexdigest()[:12]
