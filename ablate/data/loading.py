"""The data a protocol trains on, loaded once per process: its dataset at its image size, split by a seed."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING

import torch

from ablate.core.errors import UsageError
from ablate.data.splits import DatasetSplits

if TYPE_CHECKING:
    from ablate.protocols import Protocol


def default_device() -> torch.device:
    """CUDA when there is a GPU, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_protocol_data(protocol: Protocol, *, data_dir: str | os.PathLike | None = None,
                       device: str | torch.device | None = None, seed: int = 0, download: bool = False
                       ) -> DatasetSplits:
    """The splits a protocol trains on: its dataset, image size and validation fraction, split by ``seed``.

    Loaded once per process and argument set, so a reused Ray actor trains its next candidate on the splits it
    already holds; pass the result to :func:`train` as ``data=``.

    Args:
        protocol: The protocol (``ablate.protocols.load_protocol`` gives a shipped one by name).
        data_dir: Where CIFAR / ImageFolder data lives (default ``data/``).
        device: Where the tensor-resident splits live (default: CUDA if available, else CPU).
        seed: Seed of the validation split (the test split never changes).
        download: Fetch a missing CIFAR dataset into ``data_dir``.

    Returns:
        The dataset's train/val/test splits.

    Raises:
        UsageError: The data is missing.
    """
    device = torch.device(device) if device is not None else default_device()
    return _cached_splits(protocol.dataset, protocol.image_size, protocol.val_fraction,
                          None if data_dir is None else str(data_dir), str(device), seed, download)


@lru_cache(maxsize=2)
def _cached_splits(dataset: str, image_size: int | None, val_fraction: float, data_dir: str | None, device: str,
                   seed: int, download: bool) -> DatasetSplits:
    from ablate.data import load_dataset

    return load_dataset(dataset, data_dir=data_dir, device=device, val_fraction=val_fraction, seed=seed,
                        download=download, image_size=image_size)


def check_data(protocol: Protocol, data: DatasetSplits) -> None:
    """Passed-in splits must be the protocol's dataset at the protocol's size."""
    if data.name != protocol.dataset:
        raise UsageError(f"protocol {protocol.name!r} trains on {protocol.dataset}, but the data given is {data.name}")
    if protocol.image_size is not None and data.input_size[1:] != (protocol.image_size,) * 2:
        raise UsageError(f"protocol {protocol.name!r} wants {protocol.image_size}px images, the data given has "
                         f"{data.input_size[1]}px: load it with load_protocol_data(protocol)")


