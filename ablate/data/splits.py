"""Fixed train/val/test splits behind one interface that yields normalized (images, labels) batches on the device."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from typing import Protocol as TypingProtocol

import numpy as np
import torch

from ablate.core.registry import lookup
from ablate.data.augment import Augmentation, augment, normalization, normalize

SPLITS = ("train", "val", "test")
Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class DataRequest:
    """What every dataset loader receives; one type so the registry's loaders share a signature."""

    data_dir: Path
    device: torch.device
    val_fraction: float
    seed: int
    download: bool
    image_size: int | None = None  # None: the dataset's own size


class Split(TypingProtocol):
    """One split of a dataset that can produce batches."""

    def __len__(self) -> int: ...

    def batches(self, batch_size: int, *, train: bool, generator: torch.Generator | None,
                augmentation: Augmentation, channels_last: bool) -> Iterator[Batch]: ...


@dataclass
class TensorSplit:
    """A split held as a uint8 (N, 3, H, W) tensor and int64 labels on the training device."""

    images: torch.Tensor
    labels: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        self.scale, self.shift = normalization(self.mean, self.std, self.images.device)

    def __len__(self) -> int:
        return len(self.labels)

    def order(self, train: bool, generator: torch.Generator | None) -> torch.Tensor:
        """Seeded shuffle for training, the stored order for evaluation."""
        device = self.labels.device
        if train:
            return torch.randperm(len(self), generator=generator, device=device)
        return torch.arange(len(self), device=device)

    def batches(self, batch_size: int, *, train: bool, generator: torch.Generator | None,
                augmentation: Augmentation, channels_last: bool) -> Iterator[Batch]:
        """Training drops the last partial batch (BatchNorm needs > 1 sample; compiled shapes stay fixed)."""
        index = self.order(train, generator)
        stop = len(self) - len(self) % batch_size if train and len(self) >= batch_size else len(self)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        for start in range(0, stop, batch_size):
            idx = index[start:start + batch_size]
            images = self.images[idx]
            if train:
                images = augment(images, augmentation, generator)
            yield normalize(images, self.scale, self.shift).contiguous(memory_format=memory_format), self.labels[idx]


@dataclass
class DatasetSplits:
    """A dataset's fixed train/val/test splits and what a model needs to know about them."""

    name: str
    num_classes: int
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: torch.device
    splits: dict[str, Split] = field(repr=False)

    def size(self, split: str) -> int:
        return len(self._split(split))

    def loader(self, split: str, batch_size: int, *, train: bool = False, generator: torch.Generator | None = None,
               augmentation: Augmentation = Augmentation(), channels_last: bool = False) -> Iterator[Batch]:
        """One pass over ``split``; ``train=True`` shuffles and augments with ``generator``."""
        return self._split(split).batches(batch_size, train=train, generator=generator, augmentation=augmentation,
                                          channels_last=channels_last)

    def _split(self, split: str) -> Split:
        return lookup(self.splits, split, "split")


def seeded_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out) of a seeded permutation; the held-out part is ``round(fraction * n)`` long."""
    held = int(round(fraction * n))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[held:]), np.sort(perm[:held])


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std on the [0, 1] scale, from the training images only."""
    x = images.double().div(255).transpose(0, 1).reshape(images.shape[1], -1)
    return tuple(x.mean(1).tolist()), tuple(x.std(1).clamp_min(1e-6).tolist())


def tensor_splits(name: str, num_classes: int, train_images: torch.Tensor, train_labels: torch.Tensor,
                  test_images: torch.Tensor, test_labels: torch.Tensor, request: DataRequest) -> DatasetSplits:
    """Hold a seeded validation split out of the training set and move every split to the device."""
    keep, held = seeded_split(len(train_labels), request.val_fraction, request.seed)
    mean, std = channel_stats(train_images[keep])

    def make(images: torch.Tensor, labels: torch.Tensor) -> TensorSplit:
        return TensorSplit(images.to(request.device), labels.long().to(request.device), mean, std)

    splits = {
        "train": make(train_images[keep], train_labels[keep]),
        "val": make(train_images[held], train_labels[held]),
        "test": make(test_images, test_labels),
    }
    return DatasetSplits(name, num_classes, tuple(train_images.shape[1:]), mean, std, request.device, splits)
