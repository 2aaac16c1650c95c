"""Which of a recipe's settings need CUDA, written once: the trainer asks :func:`enabled` before using one, and a run
on CPUs prints :func:`cpu_fallback_line` once, so a GPU recipe run on a CPU says what it trains without."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ablate.protocols.recipe import Protocol

# recipe field → what it turns on; each is used on CUDA only (bf16 where supported, else fp16 with a GradScaler)
CUDA_ONLY: dict[str, str] = {
    "amp": "bf16 autocast",
    "channels_last": "channels_last",
    "compile": "torch.compile",
}


def enabled(protocol: Protocol, setting: str, device: torch.device | str) -> bool:
    """Whether ``protocol``'s boolean ``setting`` is in effect on ``device`` (a CUDA-only one is off elsewhere)."""
    return bool(getattr(protocol, setting)) and (setting not in CUDA_ONLY or torch.device(device).type == "cuda")


def cpu_fallback_line(protocol: Protocol, gpus_per_trial: float) -> str | None:
    """The one line a run prints when its trainings get no GPU and the recipe asks for CUDA-only settings.

    Args:
        protocol: The run's recipe.
        gpus_per_trial: GPUs each training gets (0: it trains on CPUs).

    Returns:
        E.g. ``[ablate] no GPU for the trainings: cifar10-fast's bf16 autocast, channels_last, torch.compile run
        on CUDA only, so each model trains in fp32, NCHW, eager here``, or None when nothing falls back.
    """
    wanted = [name for setting, name in CUDA_ONLY.items() if getattr(protocol, setting)]
    if gpus_per_trial > 0 or not wanted:
        return None
    return (f"[ablate] no GPU for the trainings: {protocol.name}'s {', '.join(wanted)} run on CUDA only, so each "
            f"model trains in fp32, NCHW, eager here (the same recipe otherwise)")
