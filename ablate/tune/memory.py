"""Whether each model of a run can train in the memory of the node it runs on, checked before anything trains.

The estimate, made on PyTorch's ``meta`` device (shapes only: nothing is allocated, so a width that would exhaust
the machine costs nothing to check), is a lower bound of what training takes:

- the parameters, their gradients and the optimizer's state per parameter (SGD with momentum: 1, AdamW: 2), 4
  bytes each;
- the activations autograd keeps for the backward pass: the outputs of every leaf module for one image, times the
  batch, at 4 bytes (2 under CUDA AMP).

It leaves out what it cannot see (autograd's saved inputs of functional ops, the allocator's slack, the data,
cuDNN's workspaces), so a model refused here would certainly not fit; one let through may still not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ablate.core.errors import UsageError
from ablate.models import BASELINE_BY_TIMM_NAME, BlockConfig, build_model
from ablate.protocols import Protocol

GIB = float(1 << 30)
OPTIMIZER_STATES = {"sgd": 1, "adamw": 2}  # tensors of state per parameter


@dataclass(frozen=True)
class TrainingMemory:
    """One model's training memory as estimated (see the module docstring)."""

    params: int
    activations_per_image: int | None  # None: its forward pass cannot run on the meta device
    bytes: float


def estimate(block: BlockConfig | str, protocol: Protocol, macro: str, num_classes: int,
             input_size: tuple[int, ...], device: str) -> TrainingMemory:
    """The training memory of ``block`` on ``macro`` under ``protocol`` (a lower bound; see the module docstring).

    Args:
        block: The block config (or its string).
        protocol: The recipe (batch size, optimizer, AMP).
        macro: The macro network.
        num_classes: The data's classes.
        input_size: One image's shape (C, H, W).
        device: ``cuda`` or ``cpu``: AMP halves the activations on CUDA only.
    """
    with torch.device("meta"):
        model = build_model(str(BlockConfig.coerce(block)), macro, num_classes)
    params = sum(p.numel() for p in model.parameters())
    outputs: list[int] = []

    def count(_module, _inputs, output) -> None:
        outputs.extend(t.numel() for t in (output if isinstance(output, (tuple, list)) else (output,))
                       if isinstance(t, torch.Tensor))

    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            model(torch.empty((1, *input_size), device="meta"))
        activations = sum(outputs)
    except (RuntimeError, NotImplementedError, TypeError):  # an op with no meta kernel: parameters only
        activations = None
    finally:
        for hook in hooks:
            hook.remove()
    states = 2 + OPTIMIZER_STATES.get(protocol.optimizer, 2)
    activation_bytes = 2 if protocol.amp and device == "cuda" else 4
    total = params * 4.0 * states + (activations or 0) * protocol.batch_size * float(activation_bytes)
    return TrainingMemory(params, activations, total)


def node_memory(device: str) -> float:
    """Bytes one training may use here: the GPU's memory, else the machine's (or its cgroup's limit, if lower)."""
    if device == "cuda":
        return float(torch.cuda.get_device_properties(0).total_memory)
    total = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        return min(total, float(limit)) if limit.isdigit() else total
    except OSError:
        return total


def check_fits(blocks: list[BlockConfig], baselines: tuple[str, ...], protocol: Protocol, macro: str,
               num_classes: int, input_size: tuple[int, ...], device: str, available: float | None = None) -> None:
    """Refuse, before anything trains, a run with a model whose training cannot fit this node's memory.

    Args:
        blocks: The configs the run may train (every point of its space).
        baselines: The timm names of its baselines.
        protocol: The recipe.
        macro: The macro network.
        num_classes: The data's classes.
        input_size: One image's shape.
        device: ``cuda`` or ``cpu``.
        available: Bytes a training may use (default: :func:`node_memory`).

    Raises:
        UsageError: The largest model's estimate exceeds the memory (one line: which model, how much, why).
    """
    available = node_memory(device) if available is None else available
    named = {str(b): b for b in blocks} | {BASELINE_BY_TIMM_NAME[t].name: BASELINE_BY_TIMM_NAME[t].block
                                          for t in baselines}
    estimates = [(estimate(block, protocol, macro, num_classes, input_size, device), name)
                 for name, block in named.items()]
    worst, name = max(estimates, key=lambda e: e[0].bytes) if estimates else (None, None)
    if worst is None or worst.bytes <= available:
        return
    activations = (f" + {worst.activations_per_image / 1e6:.1f} M activations per image × batch "
                   f"{protocol.batch_size}" if worst.activations_per_image is not None else "")
    raise UsageError(f"{name} needs at least {worst.bytes / GIB:.1f} GiB to train ({worst.params / 1e6:.1f} M "
                     f"params with gradients and {protocol.optimizer} state{activations}; an estimate that leaves "
                     f"out workspaces and the data), more than the {available / GIB:.1f} GiB of this node's "
                     f"{'GPU' if device == 'cuda' else 'memory'}: use smaller widths in the space, or a smaller "
                     "batch_size in the protocol")


def check_run(settings, num_classes: int, input_size: tuple[int, ...]) -> None:
    """:func:`check_fits` for every point of a run's space and its baselines, on this node's device.

    Args:
        settings: The run's :class:`~ablate.tune.settings.RunSettings` (its space resolved for the data).
        num_classes: The data's classes.
        input_size: One image's shape.

    Raises:
        UsageError: A model that cannot fit (see :func:`check_fits`).
    """
    device = "cuda" if torch.cuda.is_available() and settings.gpus_per_trial != 0 else "cpu"
    widest: dict[tuple, BlockConfig] = {}  # memory grows with the width: the widest block of each other choice
    for point in settings.space.grid_points():
        block = settings.space.config(point)
        key = (block.nonlinearity, block.spatial)
        if key not in widest or block.width > widest[key].width:
            widest[key] = block
    check_fits(list(widest.values()), settings.space.baselines,
               settings.protocol, settings.macro, num_classes, tuple(input_size), device)
