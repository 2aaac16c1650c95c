"""Training protocols: named, typed recipes (``ablate/protocols/*.yaml``) that every candidate and baseline share.

A protocol says *what* to train with (dataset, macro, optimizer, schedule, augmentation, precision); the trainer
(``ablate.training``) says *how*. Learning-rate schedules are plain functions of the step, so they are
checkpointable (only the step count is state) and testable without torch.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

from ablate.data import DATASETS, Augmentation, augmentation_problem
from ablate.errors import UsageError
from ablate.models import MACROS

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


# --- learning-rate schedules: (protocol, steps per epoch) -> lr multiplier as a function of the global step ---

LrFactor = Callable[[int], float]


def warmup_steps(protocol: Protocol, steps_per_epoch: int) -> int:
    return int(round(protocol.warmup_epochs * steps_per_epoch))


def with_warmup(protocol: Protocol, steps_per_epoch: int, after: LrFactor) -> LrFactor:
    """Linear warm-up to the full lr over ``warmup_epochs``, then ``after(step)``."""
    warmup = warmup_steps(protocol, steps_per_epoch)
    return lambda step: (step + 1) / warmup if step < warmup else after(step)


def cosine_schedule(protocol: Protocol, steps_per_epoch: int) -> LrFactor:
    """Cosine from lr to 0 over the steps after warm-up."""
    warmup = warmup_steps(protocol, steps_per_epoch)
    span = max(1, protocol.epochs * steps_per_epoch - warmup)
    return with_warmup(protocol, steps_per_epoch,
                       lambda step: 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / span))))


def step_schedule(protocol: Protocol, steps_per_epoch: int) -> LrFactor:
    """×gamma every ``step_epochs`` epochs, counted from the start (as timm's step scheduler)."""
    return with_warmup(protocol, steps_per_epoch,
                       lambda step: protocol.gamma ** (step // steps_per_epoch // protocol.step_epochs))


def onecycle_schedule(protocol: Protocol, steps_per_epoch: int) -> LrFactor:
    """OneCycle as torch's: lr/25 up to lr (over warmup_epochs, else 30 % of training), cosine down to lr/1e4."""
    up = max(1, int(round((protocol.warmup_epochs or 0.3 * protocol.epochs) * steps_per_epoch)))
    span = max(1, protocol.epochs * steps_per_epoch - up)
    start, end = 1 / 25, 1 / 1e4

    def factor(step: int) -> float:
        if step < up:
            return start + (1 - start) * step / up
        return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - up) / span)))

    return factor


SCHEDULES: dict[str, Callable[[Protocol, int], LrFactor]] = {
    "cosine": cosine_schedule,
    "onecycle": onecycle_schedule,
    "step": step_schedule,
}


def lr_factor(protocol: Protocol, steps_per_epoch: int) -> LrFactor:
    return SCHEDULES[protocol.schedule](protocol, steps_per_epoch)


# --- optimizers: (parameter groups, protocol) -> torch optimizer ---


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and norm parameters (1-D tensors), as timm does."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]


def sgd(model: torch.nn.Module, p: Protocol) -> torch.optim.Optimizer:
    return torch.optim.SGD(param_groups(model, p.weight_decay), lr=p.lr, momentum=p.momentum,
                           nesterov=p.nesterov and p.momentum > 0)


def adamw(model: torch.nn.Module, p: Protocol) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, p.weight_decay), lr=p.lr)


OPTIMIZERS: dict[str, Callable[[torch.nn.Module, Protocol], torch.optim.Optimizer]] = {"sgd": sgd, "adamw": adamw}


# --- loading ---


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
    """A shipped protocol by name (see ``list_protocols``) or one from a YAML file; a Protocol passes through."""
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


__all__ = ["DEFAULT_PROTOCOL", "OPTIMIZERS", "SCHEDULES", "Protocol", "list_protocols", "load_protocol", "lr_factor"]
