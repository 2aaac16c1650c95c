"""Protocols as data: the typed ``Protocol`` recipe, its validation, and loading from ``ablate/protocols/*.yaml``.

A protocol says *what* to train with (dataset, macro, optimizer, schedule, augmentation, precision); the trainer
(``ablate.training``) says *how*. Every mistake in a recipe is a one-line UsageError naming the file and key.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ablate.core.errors import UsageError
from ablate.core.yamlfile import one_line, read_yaml, shown
from ablate.data import DATASETS, Augmentation, augmentation_problem
from ablate.models import MACROS
from ablate.protocols.optimizers import OPTIMIZERS
from ablate.protocols.schedules import SCHEDULES

PROTOCOL_DIR = Path(__file__).parent
DEFAULT_PROTOCOL = "digits"


@dataclass(frozen=True)
class Source:
    """Where a recipe's keys come from, for its one-line errors.

    A label (``protocol 'digits'``, ``runs/x/run.json``) starts every error as is; a YAML file read by
    :func:`load_protocol` also knows each key's line, and its errors start ``path:line:``.
    """

    label: str
    lines: dict[Any, int] | None = None  # key (``augmentation.hflip`` for a nested one) → line; a YAML file's only

    def at(self, key: Any) -> str:
        """The label, or ``path:line`` of ``key`` (of its parent key, or of the file's start, when it is not there)."""
        if self.lines is None:
            return self.label
        line = self.lines.get(key) or self.lines.get(str(key).split(".")[0]) or 1
        return f"{self.label}:{line}"

    @classmethod
    def of(cls, where: str | Source) -> Source:
        return where if isinstance(where, Source) else cls(where)

    @classmethod
    def of_file(cls, path: Path, data: dict[Any, Any]) -> Source:
        """A file's keys and, under ``augmentation.``, its augmentation's keys, with the lines they are on."""
        lines = dict(getattr(data, "lines", {}))
        augmentation = data.get("augmentation")
        lines.update({f"augmentation.{k}": line for k, line in getattr(augmentation, "lines", {}).items()})
        return cls(str(path), lines)


@dataclass(frozen=True)
class Protocol:
    """A training recipe. ``lr`` is for ``batch_size`` as given (no implicit scaling)."""

    name: str
    dataset: str
    macro: str
    epochs: int
    batch_size: int
    lr: float
    description: str = ""
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    step_epochs: int = 30
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    augmentation: Augmentation = Augmentation()
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    val_fraction: float = 0.1
    image_size: int | None = None  # None: the dataset's own size (digits 32, CIFAR 32, imagefolder 224)
    expected: str = ""
    source: str = ""  # the seed (paper, repository, model card) the recipe comes from

    def __post_init__(self) -> None:
        validate(vars(self), f"protocol {self.name!r}")

    def with_overrides(self, **overrides: Any) -> "Protocol":
        """A copy with some fields replaced (validated); ``augmentation`` may be a partial dict."""
        return build_protocol({**self.as_dict(), **overrides}, f"protocol {self.name!r}", base=self)

    def with_epochs(self, epochs: int) -> "Protocol":
        """The recipe over ``epochs`` epochs with its schedule's shape kept: the warm-up and a step schedule's step
        scale with the epochs (cifar10-fast's 2 warm-up epochs of 16 become 0.125 of 1), as ``--epochs`` wants."""
        return self.with_overrides(epochs=epochs, warmup_epochs=self.warmup_epochs * epochs / self.epochs,
                                   step_epochs=max(1, round(self.step_epochs * epochs / self.epochs)))

    def as_dict(self) -> dict[str, Any]:
        """Plain types only, for run.json and YAML round trips."""
        return dataclasses.asdict(self)


FIELD_TYPES: dict[str, Any] = typing.get_type_hints(Protocol)
AUGMENTATION_TYPES: dict[str, Any] = typing.get_type_hints(Augmentation)
DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Protocol)
                            if f.default is not dataclasses.MISSING}


def _finite(value: int | float) -> bool:
    """Not NaN or infinite, and an int small enough to be a float (a 400-digit int would overflow later)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def check_type(value: Any, expected: Any, where: str | Source, key: str) -> Any:
    """bool is not an int and an int is a fine float; ``X | None`` also takes None; anything else must match; a
    number must be finite."""
    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        if value is None:
            return None
        expected = next(t for t in typing.get_args(expected) if t is not type(None))
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected in (int, float) and number and not _finite(value):
        raise UsageError(f"{Source.of(where).at(key)}: key {key!r} must be a finite number, got {shown(value)}")
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    raise UsageError(f"{Source.of(where).at(key)}: key {key!r} must be {expected.__name__}, got {shown(value)}")


def build_augmentation(value: Any, where: str | Source, base: Augmentation) -> Augmentation:
    """A mapping of Augmentation fields merged over ``base``, or an Augmentation as is."""
    source = Source.of(where)
    if isinstance(value, Augmentation):
        return value
    if not isinstance(value, dict):
        raise UsageError(f"{source.at('augmentation')}: key 'augmentation' must be a mapping with "
                         f"{', '.join(AUGMENTATION_TYPES)}")
    unknown = [k for k in value if k not in AUGMENTATION_TYPES]
    if unknown:
        allowed = ", ".join(AUGMENTATION_TYPES)
        key = f"augmentation.{unknown[0]}"
        raise UsageError(f"{source.at(key)}: unknown key {shown(key)} (allowed: {allowed})")
    merged = {**dataclasses.asdict(base), **value}
    return Augmentation(**{k: check_type(v, AUGMENTATION_TYPES[k], source, f"augmentation.{k}")
                           for k, v in merged.items()})


def build_protocol(raw: dict[str, Any], where: str | Source, base: Protocol | None = None) -> Protocol:
    """Typed Protocol from a mapping; unknown keys, wrong types and missing keys are one-line UsageErrors.

    Args:
        raw: Keys and values of the recipe.
        where: What the errors start with: a label, or the :class:`Source` of a file with its keys' lines.
        base: The protocol whose augmentation a partial ``augmentation`` mapping is merged over.
    """
    source = Source.of(where)
    unknown = [k for k in raw if k not in FIELD_TYPES]
    if unknown:
        raise UsageError(f"{source.at(unknown[0])}: unknown key {shown(unknown[0])} "
                         f"(allowed: {', '.join(FIELD_TYPES)})")
    required = [f.name for f in dataclasses.fields(Protocol) if f.default is dataclasses.MISSING]
    missing = [k for k in required if k not in raw]
    if missing:
        raise UsageError(f"{source.at(missing[0])}: missing key {missing[0]!r}")
    values = {}
    for key, value in raw.items():
        if key == "augmentation":
            values[key] = build_augmentation(value, source, base.augmentation if base else Augmentation())
        else:
            values[key] = check_type(value, FIELD_TYPES[key], source, key)
    validate({**DEFAULTS, **values}, source)
    return Protocol(**values)


CHOICES: dict[str, Callable[[], list[str]]] = {
    "dataset": lambda: list(DATASETS),
    "macro": lambda: list(MACROS),
    "optimizer": lambda: list(OPTIMIZERS),
    "schedule": lambda: list(SCHEDULES),
}

MAX_COUNT = 1_000_000  # epochs, a batch, a step: a count beyond this is a typo, not a recipe
BOUNDS: dict[str, Callable[[Any], bool]] = {
    "epochs": lambda v: 1 <= v <= MAX_COUNT,
    "batch_size": lambda v: 1 <= v <= MAX_COUNT,
    "lr": lambda v: v > 0,
    "momentum": lambda v: 0 <= v < 1,
    "weight_decay": lambda v: v >= 0,
    "step_epochs": lambda v: 1 <= v <= MAX_COUNT,
    "gamma": lambda v: 0 < v <= 1,
    "label_smoothing": lambda v: 0 <= v < 1,
    "val_fraction": lambda v: 0 < v < 1,
    "image_size": lambda v: v is None or 8 <= v <= MAX_COUNT,
}


def validate(values: dict[str, Any], where: str | Source) -> None:
    """Named choices must exist in their registries; numbers must be in range; warm-up must fit."""
    source = Source.of(where)
    for key, names in CHOICES.items():
        if values[key] not in names():
            raise UsageError(f"{source.at(key)}: key {key!r}: {shown(values[key])} is not one of {', '.join(names())}")
    for key, ok in BOUNDS.items():
        if not ok(values[key]):
            raise UsageError(f"{source.at(key)}: key {key!r} is out of range: {shown(values[key])}")
    if not 0 <= values["warmup_epochs"] < values["epochs"]:
        raise UsageError(f"{source.at('warmup_epochs')}: key 'warmup_epochs' must be in [0, epochs), "
                         f"got {values['warmup_epochs']}")
    problem = augmentation_problem(values["augmentation"], values["dataset"])
    if problem is not None:
        key = f"augmentation.{problem[0]}"
        raise UsageError(f"{source.at(key)}: key {key!r} {one_line(problem[1])}")


def list_protocols() -> list[str]:
    """Names of the protocols shipped with the package."""
    return sorted(p.stem for p in PROTOCOL_DIR.glob("*.yaml"))


def protocol_path(name_or_path: str | Path) -> Path:
    """A shipped protocol's file by name, or an explicit YAML path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise UsageError(f"protocol file {path} does not exist")
        return path
    shipped = PROTOCOL_DIR / f"{name_or_path}.yaml"
    if not shipped.is_file():
        raise UsageError(f"unknown protocol {str(name_or_path)!r}: choose one of {', '.join(list_protocols())} "
                         f"or pass a YAML file")
    return shipped


def load_protocol(name_or_path: str | Path | Protocol = DEFAULT_PROTOCOL) -> Protocol:
    """A shipped protocol by name, or one from a YAML file.

    Args:
        name_or_path: A shipped protocol's name (see :func:`list_protocols`), a YAML path, or a Protocol (returned
            as is).

    Returns:
        The validated recipe.

    Raises:
        UsageError: Unknown name, missing file, invalid YAML, unknown or mistyped key, value out of range.

    Example:
        >>> load_protocol("digits").with_overrides(epochs=1).epochs
        1
    """
    if isinstance(name_or_path, Protocol):
        return name_or_path
    path = protocol_path(name_or_path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise UsageError(f"{path}:1: a protocol file must be a mapping of keys to values, e.g. `epochs: 10`")
    return build_protocol({"name": path.stem, **raw}, Source.of_file(path, raw))
