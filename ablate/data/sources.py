"""The small datasets held as tensors: scikit-learn's bundled digits (offline) and CIFAR-10/100 from disk."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ablate.data.splits import DataRequest, DatasetSplits, seeded_split, tensor_splits
from ablate.errors import UsageError

DIGITS_TEST_FRACTION = 0.2
DIGITS_TEST_SEED = 0  # the test split stays the same whatever the run's seed, so test numbers compare across seeds
DIGITS_SIZE = 32


def digits_images(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8×8 digits (values 0–16) as uint8 (N, 3, size, size): bilinear upscale, grey→RGB."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = torch.from_numpy(bunch.images).float().mul(255 / 16).unsqueeze(1)
    big = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
    images = big.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    return images, torch.from_numpy(bunch.target).long()


def load_digits_splits(request: DataRequest) -> DatasetSplits:
    """The offline default: a fixed 20 % test split, then a seeded validation split of the rest."""
    images, labels = digits_images(request.image_size or DIGITS_SIZE)
    rest, test = seeded_split(len(labels), DIGITS_TEST_FRACTION, DIGITS_TEST_SEED)
    return tensor_splits("digits", 10, images[rest], labels[rest], images[test], labels[test], request)


@dataclass(frozen=True)
class CifarFormat:
    """Where a CIFAR variant keeps its python-pickle batches and which label key it uses."""

    name: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: bytes
    num_classes: int
    torchvision_class: str


CIFAR_FORMATS = {
    "cifar10": CifarFormat("cifar10", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                           ("test_batch",), b"labels", 10, "CIFAR10"),
    "cifar100": CifarFormat("cifar100", "cifar-100-python", ("train",), ("test",), b"fine_labels", 100, "CIFAR100"),
}


def read_cifar_batches(folder: Path, files: tuple[str, ...], label_key: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    """The torchvision on-disk format: pickled dicts with b'data' (N × 3072 uint8, CHW order) and labels."""
    images, labels = [], []
    for name in files:
        with open(folder / name, "rb") as f:
            entry = pickle.load(f, encoding="bytes")
        images.append(np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry[label_key])
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.long)


def ensure_cifar(fmt: CifarFormat, request: DataRequest) -> Path:
    """The batch folder, downloaded through torchvision only when asked; otherwise a one-line UsageError."""
    folder = request.data_dir / fmt.folder
    if all((folder / f).is_file() for f in fmt.train_files + fmt.test_files):
        return folder
    if not request.download:
        raise UsageError(
            f"{fmt.name} not found in {request.data_dir} (expected {fmt.folder}/): "
            f"pass --data-dir DIR pointing at it, or --download to fetch it"
        )
    import torchvision

    getattr(torchvision.datasets, fmt.torchvision_class)(str(request.data_dir), train=True, download=True)
    return folder


def cifar_loader(fmt: CifarFormat) -> Callable[[DataRequest], DatasetSplits]:
    def load(request: DataRequest) -> DatasetSplits:
        if request.image_size not in (None, 32):
            raise UsageError(f"{fmt.name} images are 32x32: image_size must be 32, got {request.image_size}")
        folder = ensure_cifar(fmt, request)
        train_images, train_labels = read_cifar_batches(folder, fmt.train_files, fmt.label_key)
        test_images, test_labels = read_cifar_batches(folder, fmt.test_files, fmt.label_key)
        return tensor_splits(fmt.name, fmt.num_classes, train_images, train_labels, test_images, test_labels, request)

    load.__doc__ = f"{fmt.name} from {fmt.folder}/ under the data directory (torchvision's python format)."
    return load
