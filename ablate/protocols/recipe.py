"""Protocols as data: the typed ``Protocol`` recipe, its validation, and loading from ``ablate/protocols/*.yaml``.

A protocol says *what* to train with (dataset, macro, optimizer, schedule, augmentation, precision); the trainer
(``ablate.training``) says *how*. Every mistake in a recipe is a one-line UsageError naming the file and key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from ablate.data import DATASETS, Augmentation, augmentation_problem
from ablate.errors import UsageError
from ablate.models import MACROS
from ablate.protocols.optimizers import OPTIMIZERS
from ablate.protocols.schedules import SCHEDULES

PROTOCOL_DIR = Path(__file__).parent
DEFAULT_PROTOCOL = "digits"


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

    def as_dict(self) -> dict[str, Any]:
        """Plain types only, for run.json and YAML round trips."""
        return dataclasses.asdict(self)


FIELD_TYPES: dict[str, Any] = typing.get_type_hints(Protocol)
AUGMENTATION_TYPES: dict[str, Any] = typing.get_type_hints(Augmentation)
DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Protocol)
                            if f.default is not dataclasses.MISSING}


def check_type(value: Any, expected: Any, where: str, key: str) -> Any:
    """bool is not an int and an int is a fine float; ``X | None`` also takes None; anything else must match."""
    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        if value is None:
            return None
        expected = next(t for t in typing.get_args(expected) if t is not type(None))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    raise UsageError(f"{where}: key {key!r} must be {expected.__name__}, got {value!r}")


def build_augmentation(value: Any, where: str, base: Augmentation) -> Augmentation:
    """A mapping of Augmentation fields merged over ``base``, or an Augmentation as is."""
    if isinstance(value, Augmentation):
        return value
    if not isinstance(value, dict):
        raise UsageError(f"{where}: key 'augmentation' must be a mapping with {', '.join(AUGMENTATION_TYPES)}")
    unknown = sorted(set(value) - set(AUGMENTATION_TYPES))
    if unknown:
        allowed = ", ".join(AUGMENTATION_TYPES)
        raise UsageError(f"{where}: unknown key 'augmentation.{unknown[0]}' (allowed: {allowed})")
    merged = {**dataclasses.asdict(base), **value}
    return Augmentation(**{k: check_type(v, AUGMENTATION_TYPES[k], where, f"augmentation.{k}")
                           for k, v in merged.items()})


def build_protocol(raw: dict[str, Any], where: str, base: Protocol | None = None) -> Protocol:
    """Typed Protocol from a mapping; unknown keys, wrong types and missing keys are one-line UsageErrors."""
    unknown = sorted(set(raw) - set(FIELD_TYPES))
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(FIELD_TYPES)})")
    required = [f.name for f in dataclasses.fields(Protocol) if f.default is dataclasses.MISSING]
    missing = [k for k in required if k not in raw]
    if missing:
        raise UsageError(f"{where}: missing key {missing[0]!r}")
    values = {}
    for key, value in raw.items():
        if key == "augmentation":
            values[key] = build_augmentation(value, where, base.augmentation if base else Augmentation())
        else:
            values[key] = check_type(value, FIELD_TYPES[key], where, key)
    validate({**DEFAULTS, **values}, where)
    return Protocol(**values)


CHOICES: dict[str, Callable[[], list[str]]] = {
    "dataset": lambda: list(DATASETS),
    "macro": lambda: list(MACROS),
    "optimizer": lambda: list(OPTIMIZERS),
    "schedule": lambda: list(SCHEDULES),
}

BOUNDS: dict[str, Callable[[Any], bool]] = {
    "epochs": lambda v: v >= 1,
    "batch_size": lambda v: v >= 1,
    "lr": lambda v: v > 0,
    "momentum": lambda v: 0 <= v < 1,
    "weight_decay": lambda v: v >= 0,
    "step_epochs": lambda v: v >= 1,
    "gamma": lambda v: 0 < v <= 1,
    "label_smoothing": lambda v: 0 <= v < 1,
    "val_fraction": lambda v: 0 < v < 1,
    "image_size": lambda v: v is None or v >= 8,
}


def validate(values: dict[str, Any], where: str) -> None:
    """Named choices must exist in their registries; numbers must be in range; warm-up must fit."""
    for key, names in CHOICES.items():
        if values[key] not in names():
            raise UsageError(f"{where}: key {key!r}: {values[key]!r} is not one of {', '.join(names())}")
    for key, ok in BOUNDS.items():
        if not ok(values[key]):
            raise UsageError(f"{where}: key {key!r} is out of range: {values[key]!r}")
    if not 0 <= values["warmup_epochs"] < values["epochs"]:
        raise UsageError(f"{where}: key 'warmup_epochs' must be in [0, epochs), got {values['warmup_epochs']}")
    problem = augmentation_problem(values["augmentation"], values["dataset"])
    if problem is not None:
        raise UsageError(f"{where}: key 'augmentation.{problem[0]}' {problem[1]}")


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
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UsageError(f"protocol file {path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise UsageError(f"protocol file {path}: expected a mapping of keys to values")
    return build_protocol({"name": path.stem, **raw}, f"protocol file {path}")
