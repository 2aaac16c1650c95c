"""Datasets behind one interface: fixed train/val/test splits that yield normalized (images, labels) batches.

Small datasets (digits, CIFAR) live as uint8 tensors on the training device and are augmented a whole batch at a
time (random crop with padding, horizontal flip), so the hot loop runs no per-sample Python and, on a GPU, never
waits for a CPU worker. ImageFolder trees are too big for that and go through timm transforms and a DataLoader.

- ``augment``: the Augmentation settings and the batched tensor ops;
- ``splits``: DatasetSplits and the tensor-resident split;
- ``sources``: digits and CIFAR; ``imagefolder``: ImageFolder trees;
- ``found``: what a data directory holds instead of the dataset asked for (the one-line error);
- ``loading``: a protocol's splits, loaded once per process (``load_protocol_data``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from ablate.core.errors import UsageError
from ablate.core.registry import lookup
from ablate.data.augment import Augmentation, augmentation_problem
from ablate.data.imagefolder import load_imagefolder
from ablate.data.loading import check_data, default_device, load_protocol_data
from ablate.data.sources import CIFAR_FORMATS, cifar_loader, load_digits_splits
from ablate.data.splits import DataRequest, DatasetSplits

DATASETS: dict[str, Callable[[DataRequest], DatasetSplits]] = {
    "digits": load_digits_splits,
    "cifar10": cifar_loader(CIFAR_FORMATS["cifar10"]),
    "cifar100": cifar_loader(CIFAR_FORMATS["cifar100"]),
    "imagefolder": load_imagefolder,
}

DEFAULT_DATA_DIR = Path("data")


def load_dataset(name: str, *, data_dir: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 val_fraction: float = 0.1, seed: int = 0, download: bool = False,
                 image_size: int | None = None) -> DatasetSplits:
    """Load ``name`` with fixed splits: validation held out of train by a permutation seeded with ``seed``.

    ``image_size`` (square side) defaults to the dataset's own: digits 32, CIFAR 32 (fixed), imagefolder 224.
    """
    loader = lookup(DATASETS, name, "dataset", UsageError)
    if not 0 < val_fraction < 1:
        raise UsageError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    request = DataRequest(Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR, torch.device(device),
                          val_fraction, seed, download, image_size)
    return loader(request)


__all__ = [  # the public face; the parts stay importable from their modules (ablate.data.augment, .splits, …)
    "DATASETS", "Augmentation", "DataRequest", "DatasetSplits", "augmentation_problem", "check_data", "default_device",
    "load_dataset", "load_protocol_data",
]
