"""ImageFolder trees (ImageNet-style train/ and val/): too big for device tensors, so they go through timm's
transforms and a DataLoader with worker processes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from ablate.core.errors import UsageError
from ablate.data.augment import Augmentation
from ablate.data.found import data_dir_problem
from ablate.data.splits import Batch, DataRequest, DatasetSplits, seeded_split

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


IMAGEFOLDER_EXPECTED = "train/ and val/ in it, each with one folder of images per class"


def class_folders(split: Path) -> list[str]:
    """The class folders of a split, checked: a split of loose images (ImageNet's val as it ships) is an error.

    Raises:
        UsageError: ``split`` holds no class folders.
    """
    entries = list(split.iterdir())
    classes = sorted(e.name for e in entries if e.is_dir())
    if not classes:
        loose = sum(e.is_file() for e in entries)
        holds = f"{loose} files but no class folders" if loose else "nothing"
        raise UsageError(f"{split} holds {holds}; imagefolder expects {split.name}/<class>/<image>: sort the images "
                         f"into one folder per class (ImageNet's val ships flat: sort it with its labels first)")
    return classes


class ClassFolder(torch.utils.data.Dataset):
    """torchvision's ImageFolder with its classes given rather than found (a split's subset keeps their indices):
    the same samples, read by the same loader; torchvision is imported only when a folder is read, not by every
    worker that imports the data package (it brings in ``torch._dynamo``: 150 MiB)."""

    def __init__(self, root: Path, classes: list[str], transform: Callable[[Any], Any], allow_empty: bool):
        from torchvision.datasets.folder import IMG_EXTENSIONS, default_loader, make_dataset

        self.classes = classes
        self.class_to_idx = {name: i for i, name in enumerate(classes)}
        self.samples = make_dataset(str(root), self.class_to_idx, IMG_EXTENSIONS, allow_empty=allow_empty)
        self.targets = [target for _, target in self.samples]
        self.loader, self.transform = default_loader, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, target = self.samples[index]
        return self.transform(self.loader(path)), target


def image_folder(split: Path, classes: list[str], transform: object) -> torch.utils.data.Dataset:
    """torchvision's ImageFolder over ``split`` with the class indices of ``classes`` (the training split's), so
    a val/ that lacks some classes keeps every label right.

    Raises:
        UsageError: A class folder of train/ holds no image torchvision reads (one line, torchvision's reason).
    """
    try:
        return ClassFolder(split, classes, transform, allow_empty=split.name != "train")
    except FileNotFoundError as err:
        raise UsageError(f"{split}: {str(err).splitlines()[0]}") from None


def load_imagefolder(request: DataRequest) -> DatasetSplits:
    """A class-per-folder tree with train/ and val/: a seeded validation split of train/, val/ as the test split.

    Raises:
        UsageError: ``data_dir`` is not such a tree (the line says what it holds instead), train/ or val/ holds no
            class folders, val/ has classes train/ lacks, or a class folder of train/ has no images.
    """
    from timm.data import create_transform
    from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    root = request.data_dir
    if not all((root / d).is_dir() for d in ("train", "val")):
        raise UsageError(data_dir_problem(root, "imagefolder", IMAGEFOLDER_EXPECTED,
                                          "pass --data-dir DIR pointing at the folder that holds them"))
    classes = class_folders(root / "train")
    unknown = sorted(set(class_folders(root / "val")) - set(classes))
    if unknown:
        shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        raise UsageError(f"{root / 'val'} has classes that {root / 'train'} lacks ({shown}): every val/ class "
                         f"must be a train/ class")
    size = request.image_size or IMAGEFOLDER_SIZE
    train_tf = TrainTransform(size)
    eval_tf = create_transform(size, is_training=False)
    train_full = image_folder(root / "train", classes, train_tf)
    keep, held = seeded_split(len(train_full), request.val_fraction, request.seed)
    workers = min(8, os.cpu_count() or 1)

    def make(dataset: torch.utils.data.Dataset, train_transform: TrainTransform | None = None) -> FolderSplit:
        return FolderSplit(dataset, request.device, workers, train_transform)

    splits = {
        "train": make(torch.utils.data.Subset(train_full, keep.tolist()), train_tf),
        "val": make(torch.utils.data.Subset(image_folder(root / "train", classes, eval_tf), held.tolist())),
        "test": make(image_folder(root / "val", classes, eval_tf)),
    }
    return DatasetSplits("imagefolder", len(classes), (3, size, size),
                         IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, request.device, splits)
