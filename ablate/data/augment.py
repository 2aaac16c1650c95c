"""Training-time augmentation: the protocol's settings, and batched crop / flip / normalize on device tensors.

Tensor datasets are augmented a whole batch at a time on the training device (no per-sample Python); ImageFolder
trees apply the same settings, and timm's RandAugment / random erasing, through timm's ``create_transform``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augmentation:
    """Training-time augmentation.

    Every dataset: ``hflip`` (random horizontal flip). Tensor datasets (digits, CIFAR): random crop after zero
    padding by ``crop_padding`` pixels. ImageFolder trees only, through timm's ``create_transform`` (its names
    and meanings): ``auto_augment`` (a policy string such as ``rand-m7-mstd0.5-inc1``, timm train.py's ``--aa``)
    and random erasing with probability ``re_prob``, mode ``re_mode`` and count ``re_count`` (``--reprob``,
    ``--remode``, ``--recount``).
    """

    crop_padding: int = 4
    hflip: bool = True
    auto_augment: str | None = None
    re_prob: float = 0.0
    re_mode: str = "pixel"
    re_count: int = 1

    def transform_only(self) -> list[str]:
        """The settings here that only timm's ``create_transform`` (ImageFolder) applies, set away from default."""
        return [name for name in TRANSFORM_ONLY if getattr(self, name) != getattr(NO_AUGMENTATION, name)]

    def transform_kwargs(self) -> dict[str, object]:
        """Keyword arguments of timm's ``create_transform`` for a training transform."""
        return dict(hflip=0.5 if self.hflip else 0.0, auto_augment=self.auto_augment, re_prob=self.re_prob,
                    re_mode=self.re_mode, re_count=self.re_count)


TRANSFORM_ONLY = ("auto_augment", "re_prob", "re_mode", "re_count")
TRANSFORM_DATASETS = ("imagefolder",)  # datasets read through timm's create_transform
RE_MODES = ("const", "rand", "pixel")  # timm's RandomErasing modes
AUGMENTATION_BOUNDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "crop_padding": (lambda v: v >= 0, "0 or more"),
    "re_prob": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "re_mode": (lambda v: v in RE_MODES, f"one of {', '.join(RE_MODES)}"),
    "re_count": (lambda v: v >= 1, "1 or more"),
}


def augmentation_problem(augmentation: Augmentation, dataset: str) -> tuple[str, str] | None:
    """The first setting of ``augmentation`` that is out of range or that ``dataset`` cannot apply.

    Args:
        augmentation: the protocol's augmentation.
        dataset: the protocol's dataset name.

    Returns:
        (field, what is wrong and how to fix it), or None when every setting is fine.
    """
    for name, (ok, allowed) in AUGMENTATION_BOUNDS.items():
        if not ok(getattr(augmentation, name)):
            return name, f"must be {allowed}, got {getattr(augmentation, name)!r}"
    used = augmentation.transform_only()
    if used and dataset not in TRANSFORM_DATASETS:
        return used[0], (f"is applied only to {', '.join(TRANSFORM_DATASETS)} datasets (timm's create_transform), "
                         f"not to {dataset}: remove it")
    if augmentation.auto_augment is not None:
        from timm.data import create_transform

        try:
            create_transform(32, is_training=True, auto_augment=augmentation.auto_augment)
        except Exception as err:  # timm asserts / raises on a policy string it cannot parse
            why = (str(err).splitlines() or [type(err).__name__])[0]
            return "auto_augment", (f"{augmentation.auto_augment!r} is not a timm policy ({why}): "
                                    f"use e.g. rand-m9-mstd0.5-inc1, augmix-m5-w4-d2 or original")
    return None


NO_AUGMENTATION = Augmentation(crop_padding=0, hflip=False)


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random crops of a zero-padded batch: pad once, draw offsets as tensors, gather rows then columns."""
    if padding <= 0:
        return images
    n, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    dy, dx = (torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=images.device))
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, None, :, None].expand(n, c, h, w + 2 * padding)
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, None, :].expand(n, c, h, w)
    return padded.gather(2, rows).gather(3, cols)


def random_hflip(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror a random subset of the batch left–right (one mask draw, one ``torch.where``)."""
    mask = torch.rand(images.shape[0], generator=generator, device=images.device) < p
    return torch.where(mask[:, None, None, None], images.flip(3), images)


def augment(images: torch.Tensor, augmentation: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """Batched crop + flip on uint8 images (cheaper before the float conversion)."""
    images = random_crop(images, augmentation.crop_padding, generator)
    return random_hflip(images, generator) if augmentation.hflip else images


def normalization(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) with uint8 · scale + shift = (x / 255 − mean) / std; made once so batches copy nothing."""
    std_t = torch.tensor(std, device=device).view(1, -1, 1, 1)
    mean_t = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    return 1 / (255 * std_t), -mean_t / std_t


def normalize(images: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float, standardized per channel."""
    return torch.addcmul(shift, images.float(), scale)
