"""Block search spaces: YAML files in ``search_spaces/`` that name axes, choices, macros, baselines and objectives.

A space is validated as it loads; a bad file gives one line with the file, the line and what is wrong.

Besides ``axes`` (each a list of ``choices``), ``fixed``, ``macro``, ``baselines`` and ``objectives``, a file may say
``design: balanced | search | grid`` (``DESIGNS``; the run's default ``--design``, ``search`` when absent) and may
write the width as ``width: {match: macs}``: the width is then not sampled but solved per (nonlinearity, spatial)
pair so that every network costs ResNet50's MACs (±5 %); ``SearchSpace.resolved(macro, num_classes, input_size)``
solves it (``ablate.isomacs``) and only the resolved copy can build configs.
Sampling is define-by-run on an ``optuna.Trial`` with exactly one parameter name per axis, so a categorical
parameter always keeps the same choices under its name (Optuna requires that across trials).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import yaml

from ablate.design import grid_design
from ablate.errors import UsageError
from ablate.models import BASELINE_IDS, MACROS, NONLINEARITIES, SPATIAL_OPS, BlockConfig

if TYPE_CHECKING:
    from ablate.isomacs import MatchedWidth

SPACES_DIR = Path(__file__).resolve().parent.parent / "search_spaces"
DEFAULT_SPACE = "qlblock"
DESIGNS = ("balanced", "search", "grid")  # which configs a run trains; see ablate.design and the CLI's --design
DEFAULT_DESIGN = "search"


def _positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True)
class AxisKind:
    """What values an axis accepts, and how to say so in an error."""

    valid: Callable[[Any], bool]
    expected: str


AXIS_KINDS: dict[str, AxisKind] = {
    "nonlinearity": AxisKind(lambda v: v in NONLINEARITIES, f"one of {', '.join(NONLINEARITIES)}"),
    "spatial": AxisKind(lambda v: v in SPATIAL_OPS, f"one of {', '.join(SPATIAL_OPS)}"),
    "width": AxisKind(_positive_number, "a positive number"),
}

@dataclass(frozen=True)
class Metric:
    """An objective the search can optimise: the trial-result column it reads and its usual direction."""

    column: str
    direction: str
    description: str


METRICS: dict[str, Metric] = {
    "top1": Metric("val_top1", "maximize", "validation top-1 (%)"),
    "macs": Metric("macs", "minimize", "multiply-accumulates per image"),
    "params": Metric("params", "minimize", "parameter count"),
    "latency": Metric("trial_latency_ms", "minimize",
                      "batch-1 latency (ms) measured inside each trial, on its own resources, before it trains"),
}


@dataclass(frozen=True)
class WidthMatch:
    """A cost the width can be solved to match instead of being sampled (``width: {match: NAME}``)."""

    solve: Callable[[str, str, str, int, tuple[int, int, int]], MatchedWidth]  # (nl, spatial, macro, classes, input)
    description: str


def _match_macs(nonlinearity: str, spatial: str, macro: str, num_classes: int,
                input_size: tuple[int, int, int]) -> MatchedWidth:
    """``ablate.isomacs.match_macs``, imported on first use: only spaces that match a cost need fvcore."""
    from ablate.isomacs import match_macs

    return match_macs(nonlinearity, spatial, macro, num_classes, tuple(input_size))


WIDTH_MATCHES: dict[str, WidthMatch] = {
    "macs": WidthMatch(_match_macs, "the width at which the network's MACs are within ±5 % of ResNet50's"),
}


@dataclass(frozen=True)
class Axis:
    name: str
    choices: tuple[Any, ...]


@dataclass(frozen=True)
class Objective:
    metric: str  # one of METRICS
    direction: str  # "maximize" | "minimize"

    @property
    def column(self) -> str:
        return METRICS[self.metric].column


DEFAULT_OBJECTIVES = (Objective("top1", "maximize"),)


def objectives_problem(names: list[str]) -> str | None:
    """What is wrong with a list of objective names, or None: known metrics, accuracy first, no repeats."""
    unknown = [n for n in names if n not in METRICS]
    if not names or unknown:
        what = ", ".join(repr(n) for n in unknown) or "(none given)"
        return f"unknown objective metric {what}: choose from {', '.join(METRICS)} (e.g. top1,macs)"
    if names[0] != "top1":
        return "the first objective must be top1 (accuracy); add costs after it, e.g. top1,macs"
    if len(set(names)) != len(names):
        return f"objective listed twice in {','.join(names)}"
    return None


def parse_objectives(text: str) -> tuple[Objective, ...]:
    """``top1,macs`` → (top1 maximize, macs minimize); a one-line UsageError for unknown names."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    problem = objectives_problem(names)
    if problem:
        raise UsageError(problem)
    return tuple(Objective(n, METRICS[n].direction) for n in names)


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

    @property
    def size(self) -> int:
        size = 1
        for axis in self.axes:
            size *= len(axis.choices)
        return size

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
        """One categorical parameter per sampled axis, named after it, from an ``optuna.Trial``."""
        return {a.name: trial.suggest_categorical(a.name, list(a.choices)) for a in self.axes}

    def suggest(self, trial: Any) -> BlockConfig:
        """Sample one block from an ``optuna.Trial``: one categorical parameter per axis, named after it."""
        return self.config(self.suggest_values(trial))

    def define_by_run(self, trial: Any) -> None:
        """The define-by-run function Ray Tune's ``OptunaSearch`` takes (it reads the suggested params itself)."""
        self.suggest_values(trial)

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


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader whose mappings remember the line of each key, for one-line errors that point at it."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _Mapping:
    mapping = _Mapping(loader.construct_mapping(node, deep=True))
    mapping.lines = {loader.construct_object(k, deep=True): k.start_mark.line + 1 for k, _ in node.value}
    mapping.line = node.start_mark.line + 1
    return mapping


class _Mapping(dict):
    lines: dict[Any, int]
    line: int


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_TOP_LEVEL_KEYS = {"name", "description", "axes", "fixed", "macro", "baselines", "objectives", "design"}


class _SpaceFile:
    """Validation of one file; every failure is a UsageError ``path:line: what is wrong``."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, line: int, message: str) -> UsageError:
        return UsageError(f"{self.path}:{line}: {message}")

    def load(self) -> SearchSpace:
        try:
            data = yaml.load(self.path.read_text(), Loader=_LineLoader)
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            raise self.fail(mark.line + 1 if mark else 1, f"invalid YAML: {err.problem or err.context}")
        if not isinstance(data, _Mapping):
            raise self.fail(1, "a search space must be a mapping with an 'axes' key")
        for key in data:
            if key not in _TOP_LEVEL_KEYS:
                raise self.fail(data.lines[key], f"unknown key {key!r} (known: {', '.join(sorted(_TOP_LEVEL_KEYS))})")
        if "axes" not in data:
            raise self.fail(data.line, "missing 'axes': name at least one of " + ", ".join(AXIS_KINDS))
        width_match = self._width_match(data["axes"])
        axes = self._axes(data["axes"], data.lines["axes"])
        searched = {a.name for a in axes} | ({"width"} if width_match else set())
        fixed = self._fixed(data.get("fixed") or _Mapping(), data.lines.get("fixed", 1), searched)
        return SearchSpace(
            name=str(data.get("name", self.path.stem)), path=self.path, description=str(data.get("description", "")),
            axes=axes, fixed=fixed, macros=self._macros(data.get("macro"), data.lines.get("macro", 1)),
            baselines=self._baselines(data.get("baselines", list(BASELINE_IDS)), data.lines.get("baselines", 1)),
            objectives=self._objectives(data.get("objectives"), data.lines.get("objectives", 1)),
            design=self._design(data.get("design", DEFAULT_DESIGN), data.lines.get("design", 1)),
            width_match=width_match,
        )

    def _check_value(self, axis: str, value: Any, line: int) -> Any:
        kind = AXIS_KINDS[axis]
        if not kind.valid(value):
            raise self.fail(line, f"invalid value {value!r} for axis {axis!r}: expected {kind.expected}")
        return float(value) if axis == "width" else value

    def _width_match(self, node: Any) -> str | None:
        """The cost named by ``width: {match: NAME}``, or None when the width (if any) lists choices."""
        spec = node.get("width") if isinstance(node, _Mapping) else None
        if not isinstance(spec, _Mapping) or "match" not in spec:
            return None
        at = spec.lines["match"]
        if "choices" in spec:
            raise self.fail(at, "axis 'width' has both choices and match: keep one")
        if not isinstance(spec["match"], str) or spec["match"] not in WIDTH_MATCHES:
            raise self.fail(at, f"unknown width match {spec['match']!r}: choose one of {', '.join(WIDTH_MATCHES)}")
        return spec["match"]

    def _axes(self, node: Any, line: int) -> tuple[Axis, ...]:
        """The sampled axes (a matched width is not one)."""
        if not isinstance(node, _Mapping) or not node:
            raise self.fail(line, "'axes' must map axis names to their choices")
        axes = []
        for name, spec in node.items():
            at = node.lines[name]
            if name not in AXIS_KINDS:
                raise self.fail(at, f"unknown axis {name!r} (known: {', '.join(AXIS_KINDS)})")
            if isinstance(spec, _Mapping) and "match" in spec:
                if name != "width":
                    raise self.fail(spec.lines["match"], f"only the width can be matched, not {name!r}: give choices")
                continue
            choices = spec.get("choices") if isinstance(spec, dict) else spec
            if not isinstance(choices, list) or not choices:
                raise self.fail(at, f"axis {name!r} has no choices: give a non-empty list, e.g. choices: [...]")
            values = tuple(self._check_value(name, v, at) for v in choices)
            if len(set(values)) != len(values):
                raise self.fail(at, f"axis {name!r} lists a choice twice")
            axes.append(Axis(name, values))
        return tuple(axes)

    def _fixed(self, node: Any, line: int, searched: set[str]) -> dict[str, Any]:
        if not isinstance(node, _Mapping):
            raise self.fail(line, "'fixed' must map axis names to one value each")
        for name, value in node.items():
            if name not in AXIS_KINDS:
                raise self.fail(node.lines[name], f"unknown axis {name!r} in 'fixed' (known: {', '.join(AXIS_KINDS)})")
            if name in searched:
                raise self.fail(node.lines[name], f"axis {name!r} is both searched and fixed")
        return {name: self._check_value(name, value, node.lines[name]) for name, value in node.items()}

    def _macros(self, node: Any, line: int) -> dict[str, str]:
        macros = {"default": node} if isinstance(node, str) else (node or {})
        if not isinstance(macros, dict):
            raise self.fail(line, "'macro' must be a macro name or a mapping protocol → macro")
        for protocol, macro in macros.items():
            if macro not in MACROS:
                at = macros.lines[protocol] if isinstance(macros, _Mapping) else line
                raise self.fail(at, f"unknown macro {macro!r} (known: {', '.join(MACROS)})")
        return dict(macros)

    def _baselines(self, node: Any, line: int) -> tuple[str, ...]:
        if not isinstance(node, list) or any(b not in BASELINE_IDS for b in node):
            raise self.fail(line, f"'baselines' must list some of {', '.join(BASELINE_IDS)}")
        return tuple(node)

    def _design(self, node: Any, line: int) -> str:
        if node not in DESIGNS:
            raise self.fail(line, f"unknown design {node!r}: choose one of {', '.join(DESIGNS)}")
        return node

    def _objectives(self, node: Any, line: int) -> tuple[Objective, ...]:
        if node is None:
            return DEFAULT_OBJECTIVES
        if not isinstance(node, list) or not node:
            raise self.fail(line, "'objectives' must be a list like [{metric: top1, direction: maximize}]")
        metrics = [item.get("metric") if isinstance(item, dict) else item for item in node]
        problem = objectives_problem(metrics)
        if problem:
            raise self.fail(line, problem)
        objectives = []
        for item, metric in zip(node, metrics):
            direction = item.get("direction", METRICS[metric].direction) if isinstance(item, dict) else METRICS[metric].direction
            if direction not in ("maximize", "minimize"):
                raise self.fail(getattr(item, "line", line), f"objective direction must be maximize or minimize, got {direction!r}")
            objectives.append(Objective(metric, direction))
        return tuple(objectives)


def list_spaces() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def load_space(name_or_path: str | Path = DEFAULT_SPACE) -> SearchSpace:
    """A shipped space by name (``qlblock``) or any YAML file by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = SPACES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise UsageError(f"unknown search space {str(name_or_path)!r}: available: {', '.join(list_spaces())} (or pass a .yaml path)")
    elif not path.is_file():
        raise UsageError(f"search space file {path} does not exist")
    return _SpaceFile(path).load()
