"""Search-space YAML files: validated as they load, every mistake one line with the file, the line and the fix."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ablate.core.defaults import DESIGNS
from ablate.core.errors import UsageError
from ablate.core.yamlfile import YamlMapping, one_line, read_yaml, shown
from ablate.models import BASELINE_IDS, MACROS, NONLINEARITIES, SPATIAL_OPS, BlockConfig
from ablate.plugins import Plugin, load_plugins
from ablate.space.objectives import DEFAULT_OBJECTIVES, METRICS, Objective, objectives_problem
from ablate.space.searchspace import DEFAULT_DESIGN, WIDTH_MATCHES, Axis, SearchSpace


def shipped(folder: str) -> Path:
    """A folder the package ships (``search_spaces``, ``examples``): inside the installed package (a wheel puts it
    there), else beside it in the checkout (an editable install, the repository)."""
    package = Path(__file__).resolve().parent.parent
    return package / folder if (package / folder).is_dir() else package.parent / folder


SPACES_DIR = shipped("search_spaces")
DEFAULT_SPACE = "qlblock"


MAX_WIDTH = 1000  # a width multiplies a block's channels: more is a typo, not a network


def _width(value: Any) -> bool:
    """A finite positive number up to MAX_WIDTH (NaN, infinities and huge ints fail the comparison)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= MAX_WIDTH


def _name_in(names: Any) -> Callable[[Any], bool]:
    """A check for a name of ``names`` (a list or a mapping is no name: it would not even hash)."""
    return lambda value: isinstance(value, str) and value in names


@dataclass(frozen=True)
class AxisKind:
    """What values an axis accepts, and how to say so in an error (read when needed: plugins add choices)."""

    valid: Callable[[Any], bool]
    expected: Callable[[], str]


AXIS_KINDS: dict[str, AxisKind] = {
    "nonlinearity": AxisKind(_name_in(NONLINEARITIES), lambda: f"one of {', '.join(NONLINEARITIES)}"),
    "spatial": AxisKind(_name_in(SPATIAL_OPS), lambda: f"one of {', '.join(SPATIAL_OPS)}"),
    "width": AxisKind(_width, lambda: f"a positive number up to {MAX_WIDTH}"),
}


_TOP_LEVEL_KEYS = {"name", "description", "plugins", "axes", "fixed", "macro", "baselines", "objectives", "design",
                   "reference"}


class _SpaceFile:
    """Validation of one file; every failure is a UsageError ``path:line: what is wrong``."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, line: int, message: str) -> UsageError:
        return UsageError(f"{self.path}:{line}: {message}")

    def load(self) -> SearchSpace:
        data = read_yaml(self.path)
        if not isinstance(data, YamlMapping):
            raise self.fail(1, "a search space must be a mapping with an 'axes' key")
        for key in data:
            if key not in _TOP_LEVEL_KEYS:
                raise self.fail(data.lines[key],
                                f"unknown key {shown(key)} (known: {', '.join(sorted(_TOP_LEVEL_KEYS))})")
        plugins = self._plugins(data.get("plugins", []), data.lines.get("plugins", 1))
        if "axes" not in data:
            raise self.fail(data.line, "missing 'axes': name at least one of " + ", ".join(AXIS_KINDS))
        width_match = self._width_match(data["axes"])
        axes = self._axes(data["axes"], data.lines["axes"])
        searched = {a.name for a in axes} | ({"width"} if width_match else set())
        fixed = self._fixed(data.get("fixed", YamlMapping()), data.lines.get("fixed", 1), searched)
        space = SearchSpace(
            name=self._text(data, "name", self.path.stem), path=self.path,
            description=self._text(data, "description", ""),
            axes=axes, fixed=fixed, macros=self._macros(data.get("macro"), data.lines.get("macro", 1)),
            baselines=self._baselines(data.get("baselines", list(BASELINE_IDS)), data.lines.get("baselines", 1)),
            objectives=self._objectives(data.get("objectives"), data.lines.get("objectives", 1)),
            design=self._design(data.get("design", DEFAULT_DESIGN), data.lines.get("design", 1)),
            width_match=width_match, plugins=plugins,
        )
        reference = self._reference(space, data.get("reference"), data.lines.get("reference", 1))
        if space.design == "ablation" and reference is None:
            raise self.fail(data.lines.get("design", 1), "design: ablation needs a reference block: add e.g. "
                                                         "`reference: multiply-dwconv-w2` (a point of the space)")
        return dataclasses.replace(space, reference=reference)

    def _text(self, data: YamlMapping, key: str, default: str) -> str:
        """A prose key's value: text (a number is read as its text); empty, it is ``default``."""
        value = data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.fail(data.lines[key], f"'{key}' must be text, got {shown(value)}: quote it")
        return str(value)

    def _reference(self, space: SearchSpace, node: Any, line: int) -> dict[str, Any] | None:
        """The ablation design's reference point: a config string (``multiply-dwconv-w2``) or axis → value."""
        if node is None:
            return None
        try:
            if isinstance(node, str):
                return space.point_of(node)
            if isinstance(node, YamlMapping) and set(node) == {a.name for a in space.axes}:
                point = {a.name: self._check_value(a.name, node[a.name], node.lines[a.name]) for a in space.axes}
                for axis in space.axes:
                    if point[axis.name] not in axis.choices:
                        raise ValueError(f"{axis.name} {point[axis.name]!r} is not one of its choices")
                return point
        except ValueError as err:
            raise self.fail(line, f"reference: {one_line(str(err))}") from None
        raise self.fail(line, "'reference' must be a config string (e.g. multiply-dwconv-w2) or map each axis ("
                              + ", ".join(a.name for a in space.axes) + ") to one of its choices")

    def _plugins(self, node: Any, line: int) -> tuple[Plugin, ...]:
        """Import the modules the file names (paths relative to the file), before its axes are checked."""
        if not isinstance(node, list) or not all(isinstance(p, str) and p.strip() for p in node):
            raise self.fail(line, "'plugins' must list module names or .py paths, e.g. plugins: [my_ops.py]")
        try:
            return load_plugins(node, base_dir=self.path.parent)
        except UsageError as err:
            raise self.fail(line, one_line(str(err))) from None

    def _check_value(self, axis: str, value: Any, line: int) -> Any:
        kind = AXIS_KINDS[axis]
        if not kind.valid(value):
            raise self.fail(line, f"invalid value {shown(value)} for axis {axis!r}: expected {kind.expected()}"
                            + (" (a plugin's op? name its module under plugins: or pass --plugin)"
                               if axis != "width" else ""))
        return float(value) if axis == "width" else value

    def _width_match(self, node: Any) -> str | None:
        """The cost named by ``width: {match: NAME}``, or None when the width (if any) lists choices."""
        spec = node.get("width") if isinstance(node, YamlMapping) else None
        if not isinstance(spec, YamlMapping) or "match" not in spec:
            return None
        at = spec.lines["match"]
        if "choices" in spec:
            raise self.fail(at, "axis 'width' has both choices and match: keep one")
        if not isinstance(spec["match"], str) or spec["match"] not in WIDTH_MATCHES:
            raise self.fail(at, f"unknown width match {shown(spec['match'])}: choose one of {', '.join(WIDTH_MATCHES)}")
        return spec["match"]

    def _axes(self, node: Any, line: int) -> tuple[Axis, ...]:
        """The sampled axes (a matched width is not one)."""
        if not isinstance(node, YamlMapping) or not node:
            raise self.fail(line, "'axes' must map axis names to their choices")
        axes = []
        for name, spec in node.items():
            at = node.lines[name]
            if name not in AXIS_KINDS:
                raise self.fail(at, f"unknown axis {shown(name)} (known: {', '.join(AXIS_KINDS)})")
            self._known_keys(spec, ("choices", "match"), f"axis {name!r}")
            if isinstance(spec, YamlMapping) and "match" in spec:
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

    def _known_keys(self, node: Any, known: tuple[str, ...], what: str) -> None:
        """A mapping in the file (``node``, when it is one) may only use the ``known`` keys."""
        for key in node if isinstance(node, YamlMapping) else ():
            if key not in known:
                raise self.fail(node.lines[key], f"unknown key {shown(key)} in {what} (known: {', '.join(known)})")

    def _fixed(self, node: Any, line: int, searched: set[str]) -> dict[str, Any]:
        node = YamlMapping() if node is None else node
        if not isinstance(node, YamlMapping):
            raise self.fail(line, "'fixed' must map axis names to one value each")
        for name, value in node.items():
            if name not in AXIS_KINDS:
                raise self.fail(node.lines[name],
                                f"unknown axis {shown(name)} in 'fixed' (known: {', '.join(AXIS_KINDS)})")
            if name in searched:
                raise self.fail(node.lines[name], f"axis {name!r} is both searched and fixed")
        return {name: self._check_value(name, value, node.lines[name]) for name, value in node.items()}

    def _macros(self, node: Any, line: int) -> dict[str, str]:
        macros = {"default": node} if isinstance(node, str) else ({} if node is None else node)
        if not isinstance(macros, dict):
            raise self.fail(line, "'macro' must be a macro name or a mapping protocol → macro")
        for protocol, macro in macros.items():
            at = macros.lines[protocol] if isinstance(macros, YamlMapping) else line
            if not isinstance(protocol, str):
                raise self.fail(at, f"'macro' maps protocol names (or default) to macros, not {shown(protocol)}")
            if not isinstance(macro, str) or macro not in MACROS:
                raise self.fail(at, f"unknown macro {shown(macro)} (known: {', '.join(MACROS)})")
        return dict(macros)

    def _baselines(self, node: Any, line: int) -> tuple[str, ...]:
        if not isinstance(node, list) or any(not isinstance(b, str) or b not in BASELINE_IDS for b in node):
            raise self.fail(line, f"'baselines' must list some of {', '.join(BASELINE_IDS)}")
        return tuple(node)

    def _design(self, node: Any, line: int) -> str:
        if node not in DESIGNS:
            raise self.fail(line, f"unknown design {shown(node)}: choose one of {', '.join(DESIGNS)}")
        return node

    def _objectives(self, node: Any, line: int) -> tuple[Objective, ...]:
        if node is None:
            return DEFAULT_OBJECTIVES
        if not isinstance(node, list) or not node:
            raise self.fail(line, "'objectives' must be a list like [{metric: top1, direction: maximize}]")
        for item in node:
            self._known_keys(item, ("metric", "direction"), "an objective")
        metrics = [item.get("metric") if isinstance(item, dict) else item for item in node]
        for item, metric in zip(node, metrics):
            if not isinstance(metric, str) or metric not in METRICS:
                raise self.fail(getattr(item, "line", line), f"unknown objective metric {shown(metric)}: choose from "
                                                             f"{', '.join(METRICS)} (e.g. [top1, macs])")
        problem = objectives_problem(metrics)
        if problem:
            raise self.fail(line, problem)
        objectives = []
        for item, metric in zip(node, metrics):
            direction = (item.get("direction", METRICS[metric].direction) if isinstance(item, dict)
                         else METRICS[metric].direction)
            if direction not in ("maximize", "minimize"):
                raise self.fail(getattr(item, "line", line),
                                f"objective direction must be maximize or minimize, got {shown(direction)}")
            objectives.append(Objective(metric, direction))
        return tuple(objectives)


def unnamed_axes(space: SearchSpace) -> dict[str, Any]:
    """The axes a space neither searches, matches nor fixes, each with the value every block of it then gets (the
    block's default): a choice the file never states, which a run states in one line."""
    named = {a.name for a in space.axes} | set(space.fixed) | ({"width"} if space.width_match else set())
    return {name: getattr(BlockConfig(), name) for name in AXIS_KINDS if name not in named}


def unnamed_axes_line(space: SearchSpace) -> str | None:
    """The line that states :func:`unnamed_axes` (None when the file names every axis)."""
    unnamed = unnamed_axes(space)
    if not unnamed:
        return None
    shown_ = ", ".join(f"{name} {value}" for name, value in unnamed.items())
    fixed = ", ".join(f"{name}: {value}" for name, value in unnamed.items())
    return (f"[ablate] note: space {space.name} ({space.path}) names no {' or '.join(unnamed)}: every block gets the "
            f"default {shown_} (write `fixed: {{{fixed}}}` in the file to say so)")


def list_spaces() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def load_space(name_or_path: str | Path = DEFAULT_SPACE) -> SearchSpace:
    """A shipped space by name, or any search-space YAML file by path, validated.

    Args:
        name_or_path: A name from :func:`list_spaces` (``qlblock``, ``qlblock-iso``, ``pflayer``, ``full``) or a
            ``.yaml`` / ``.yml`` path.

    Returns:
        The SearchSpace; call ``resolved(macro, num_classes, input_size)`` on a space with ``width: {match: macs}``
        before building configs.

    Raises:
        UsageError: An unknown name, a missing file, or a mistake in the file (``path:line: what is wrong``).

    Example:
        >>> space = load_space("qlblock")
        >>> space.size, [a.name for a in space.axes]
        (36, ['nonlinearity', 'spatial', 'width'])
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = SPACES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise UsageError(f"unknown search space {str(name_or_path)!r}: available: {', '.join(list_spaces())} "
                             "(or pass a .yaml path)")
    elif not path.is_file():
        example = shipped("examples") / path.relative_to("examples") if path.parts[:1] == ("examples",) else None
        if example is None or not example.is_file():
            raise UsageError(f"search space file {path} does not exist")
        path = example  # a shipped example, named as in the checkout, found from any folder
    return _SpaceFile(path).load()
