"""The small datasets held as tensors: scikit-learn's bundled digits (offline) and CIFAR-10/100 from disk."""

from __future__ import annotations

import gzip
import importlib.util
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ablate.core.errors import UsageError
from ablate.data.found import data_dir_problem
from ablate.data.splits import DataRequest, DatasetSplits, seeded_split, tensor_splits

DIGITS_TEST_FRACTION = 0.2
DIGITS_TEST_SEED = 0  # the test split stays the same whatever the run's seed, so test numbers compare across seeds
DIGITS_SIZE = 32


def digits_images(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8×8 digits (values 0–16) as uint8 (N, 3, size, size): bilinear upscale, grey→RGB."""
    pixels, labels = read_digits()
    small = torch.from_numpy(pixels).float().mul(255 / 16).reshape(-1, 1, 8, 8)
    big = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
    images = big.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    return images, torch.from_numpy(labels).long()


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits as ``sklearn.datasets.load_digits`` reads them — its bundled ``digits.csv.gz``, 64 pixels then
    the label per row — without importing scikit-learn, whose datasets module brings in SciPy and pandas (135 MiB
    more in every training worker; ``benchmarks/worker_memory.py``).

    Returns:
        The pixels (N × 64 uint8, values 0–16) and the labels (N int64).

    Raises:
        UsageError: scikit-learn is not installed.
    """
    spec = importlib.util.find_spec("sklearn")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("the digits dataset ships with scikit-learn, which is not installed: pip install "
                         "scikit-learn")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.uint8)
    return table[:, :-1], table[:, -1].astype(np.int64)


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
    archive: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: bytes
    num_classes: int
    torchvision_class: str

    @property
    def files(self) -> tuple[str, ...]:
        return self.train_files + self.test_files


CIFAR_FORMATS = {
    "cifar10": CifarFormat("cifar10", "cifar-10-batches-py", "cifar-10-python.tar.gz",
                           tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), b"labels", 10, "CIFAR10"),
    "cifar100": CifarFormat("cifar100", "cifar-100-python", "cifar-100-python.tar.gz", ("train",), ("test",),
                            b"fine_labels", 100, "CIFAR100"),
}
CIFAR_IMAGE_BYTES = 3 * 32 * 32

# What a CIFAR batch may refer to: numpy's array and dtype (the originals were pickled by python 2's cPickle with
# numpy.core; re-pickled copies name numpy._core) and python 3's spelling of a byte string. Nothing else is loaded,
# so a file that is not a CIFAR batch cannot run code when read.
CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
    ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class ForeignGlobal(pickle.UnpicklingError):
    """A pickle that refers to something no CIFAR batch refers to."""


class CifarUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that loads only :data:`CIFAR_GLOBALS`."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in CIFAR_GLOBALS:
            raise ForeignGlobal(f"it refers to {module}.{name}, which no CIFAR batch does")
        return super().find_class(module, name)


def read_cifar_batch(path: Path, fmt: CifarFormat) -> tuple[np.ndarray, list[int]]:
    """One batch file: its images (N × 3072 uint8, CHW order) and labels, checked.

    Raises:
        UsageError: The file is truncated or corrupt, or not a batch of ``fmt`` (names what it holds instead).
    """
    def problem(reason: str) -> UsageError:
        return UsageError(f"{path} is not a {fmt.name} batch ({reason}): extract {fmt.archive} again, or pass "
                          f"--download")

    try:
        with open(path, "rb") as f:
            entry = CifarUnpickler(f, encoding="bytes").load()
    except ForeignGlobal as err:
        raise problem(str(err)) from None
    except Exception as err:  # a damaged pickle raises nearly any type (EOFError, UnpicklingError, ValueError, …)
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise problem(f"truncated or corrupt: {type(err).__name__}" + (f": {first}" if first else "")) from None
    if not isinstance(entry, dict):
        raise problem(f"a pickled {type(entry).__name__}, not a dict")
    entry = {k.encode() if isinstance(k, str) else k: v for k, v in entry.items()}
    if fmt.label_key not in entry or b"data" not in entry:
        keys = ", ".join(sorted(k.decode(errors="replace") for k in entry if isinstance(k, bytes)))
        raise problem(f"keys {keys or 'none'}; a {fmt.name} batch has data and {fmt.label_key.decode()}")
    images, labels = entry[b"data"], entry[fmt.label_key]
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 2
            and images.shape[1] == CIFAR_IMAGE_BYTES):
        shape = f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}".strip()
        raise problem(f"data is {shape}, not uint8 rows of {CIFAR_IMAGE_BYTES}")
    labels = np.asarray(labels)
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise problem(f"{len(images)} images but labels of shape {labels.shape} and type {labels.dtype}")
    if len(labels) and not (0 <= labels.min() and labels.max() < fmt.num_classes):
        raise problem(f"labels {labels.min()}..{labels.max()}, outside 0..{fmt.num_classes - 1}")
    return images, labels.tolist()


def read_cifar_batches(folder: Path, files: tuple[str, ...], fmt: CifarFormat) -> tuple[torch.Tensor, torch.Tensor]:
    """The torchvision on-disk format: pickled dicts with b'data' (N × 3072 uint8, CHW order) and labels."""
    images, labels = [], []
    for name in files:
        data, targets = read_cifar_batch(folder / name, fmt)
        images.append(data.reshape(-1, 3, 32, 32))
        labels.extend(targets)
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.long)


def cifar_folder(fmt: CifarFormat, root: Path) -> Path | None:
    """The batch folder: ``root/<folder>``, or ``root`` itself when it holds the batches (pointed one level deeper).

    Raises:
        UsageError: The folder is there but lacks some batches (an interrupted extraction).
    """
    for folder in (root / fmt.folder, root):
        present = [f for f in fmt.files if (folder / f).is_file()]
        if present and len(present) < len(fmt.files):
            lacking = ", ".join(f for f in fmt.files if f not in present)
            raise UsageError(f"{folder} lacks {lacking} of {fmt.name}'s batches: extract {fmt.archive} again, or "
                             f"pass --download")
        if present:
            return folder
    return None


def ensure_cifar(fmt: CifarFormat, request: DataRequest) -> Path:
    """The batch folder, downloaded through torchvision only when asked; otherwise a one-line UsageError saying
    what the data directory holds instead."""
    folder = cifar_folder(fmt, request.data_dir)
    if folder is not None:
        return folder
    if not request.download:
        expected = f"{fmt.folder}/ (extracted from {fmt.archive}) in it"
        raise UsageError(data_dir_problem(request.data_dir, fmt.name, expected,
                                          "pass --data-dir DIR pointing at the folder that holds it, or --download "
                                          "to fetch it"))
    import torchvision

    getattr(torchvision.datasets, fmt.torchvision_class)(str(request.data_dir), train=True, download=True)
    return request.data_dir / fmt.folder


def cifar_loader(fmt: CifarFormat) -> Callable[[DataRequest], DatasetSplits]:
    def load(request: DataRequest) -> DatasetSplits:
        if request.image_size not in (None, 32):
            raise UsageError(f"{fmt.name} images are 32x32: image_size must be 32, got {request.image_size}")
        folder = ensure_cifar(fmt, request)
        train_images, train_labels = read_cifar_batches(folder, fmt.train_files, fmt)
        test_images, test_labels = read_cifar_batches(folder, fmt.test_files, fmt)
        return tensor_splits(fmt.name, fmt.num_classes, train_images, train_labels, test_images, test_labels, request)

    load.__doc__ = f"{fmt.name} from {fmt.folder}/ under the data directory (torchvision's python format)."
    return load
