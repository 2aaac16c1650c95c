"""ImageFolder trees (ImageNet-style train/ and val/): too big for device tensors, so they go through timm's
transforms and a DataLoader with worker processes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import torch

from ablate.data.augment import Augmentation
from ablate.data.splits import Batch, DataRequest, DatasetSplits, seeded_split
from ablate.errors import UsageError

IMAGEFOLDER_SIZE = 224


@dataclass
class FolderSplit:
    """A split read from disk through a torchvision dataset and a DataLoader with worker processes."""

    dataset: torch.utils.data.Dataset
    device: torch.device
    num_workers: int
    train_transform: TrainTransform | None = None  # the training split's timm transform

    def __len__(self) -> int:
        return len(self.dataset)

    def batches(self, batch_size: int, *, train: bool, generator: torch.Generator | None,
                augmentation: Augmentation, channels_last: bool) -> Iterator[Batch]:
        """Training batches go through timm's transform for ``augmentation``; the generator seeds shuffling."""
        if train and self.train_transform is not None:
            self.train_transform.use(augmentation)
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=batch_size, shuffle=train, drop_last=train, num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda", generator=cpu_generator(generator) if train else None,
            persistent_workers=False,
        )
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        for images, labels in loader:
            images = images.to(self.device, non_blocking=True).contiguous(memory_format=memory_format)
            yield images, labels.to(self.device, non_blocking=True)


def cpu_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """DataLoader wants a CPU generator: derive one from the (possibly CUDA) run generator, once per epoch."""
    if generator is None:
        return None
    seed = torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item()
    return torch.Generator().manual_seed(int(seed))


class TrainTransform:
    """timm's training transform (``create_transform``) for the augmentation the training loop last asked for.

    The protocol's augmentation reaches a split only when batches are drawn, so ``FolderSplit.batches`` calls
    ``use(augmentation)`` before it starts the epoch's workers; the transform is rebuilt only when it changes.
    """

    def __init__(self, size: int):
        self.size = size
        self.augmentation: Augmentation | None = None
        self.use(Augmentation())

    def use(self, augmentation: Augmentation) -> None:
        """Build timm's transform for ``augmentation`` (RandAugment, random erasing, flip) unless already built."""
        from timm.data import create_transform

        if augmentation != self.augmentation:
            self.transform = create_transform(self.size, is_training=True, **augmentation.transform_kwargs())
            self.augmentation = augmentation

    def __call__(self, image: object) -> torch.Tensor:
        return self.transform(image)


def load_imagefolder(request: DataRequest) -> DatasetSplits:
    """A class-per-folder tree with train/ and val/: a seeded validation split of train/, val/ as the test split."""
    from timm.data import create_transform
    from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    from torchvision.datasets import ImageFolder

    root = request.data_dir
    missing = [d for d in ("train", "val") if not (root / d).is_dir()]
    if missing:
        raise UsageError(f"imagefolder not found in {root} (expected train/ and val/ class folders): "
                         f"pass --data-dir DIR pointing at it")
    size = request.image_size or IMAGEFOLDER_SIZE
    train_tf = TrainTransform(size)
    eval_tf = create_transform(size, is_training=False)
    train_full = ImageFolder(str(root / "train"), transform=train_tf)
    keep, held = seeded_split(len(train_full), request.val_fraction, request.seed)
    workers = min(8, os.cpu_count() or 1)

    def make(dataset: torch.utils.data.Dataset, train_transform: TrainTransform | None = None) -> FolderSplit:
        return FolderSplit(dataset, request.device, workers, train_transform)

    splits = {
        "train": make(torch.utils.data.Subset(train_full, keep.tolist()), train_tf),
        "val": make(torch.utils.data.Subset(ImageFolder(str(root / "train"), transform=eval_tf), held.tolist())),
        "test": make(ImageFolder(str(root / "val"), transform=eval_tf)),
    }
    return DatasetSplits("imagefolder", len(train_full.classes), (3, size, size),
                         IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, request.device, splits)
