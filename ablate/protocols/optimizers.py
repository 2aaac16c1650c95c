"""Optimizers of a protocol, built from timm's weight-decay parameter groups (no decay on biases and norms)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch
from timm.optim import param_groups_weight_decay

if TYPE_CHECKING:
    from ablate.protocols.recipe import Protocol


def sgd(model: torch.nn.Module, p: Protocol) -> torch.optim.Optimizer:
    """SGD with momentum (Nesterov when the recipe says so)."""
    return torch.optim.SGD(param_groups_weight_decay(model, p.weight_decay), lr=p.lr, momentum=p.momentum,
                           nesterov=p.nesterov and p.momentum > 0)


def adamw(model: torch.nn.Module, p: Protocol) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups_weight_decay(model, p.weight_decay), lr=p.lr)


OPTIMIZERS: dict[str, Callable[[torch.nn.Module, Protocol], torch.optim.Optimizer]] = {"sgd": sgd, "adamw": adamw}
