"""Datasets behind one interface: fixed train/val/test splits that yield normalized (images, labels) batches.

Small datasets (digits, CIFAR) live as uint8 tensors on the training device and are augmented a whole batch at a
time (random crop with padding, horizontal flip), so the hot loop runs no per-sample Python and, on a GPU, never
waits for a CPU worker. ImageFolder trees are too big for that and go through timm transforms and a DataLoader.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol as TypingProtocol

import numpy as np
import torch
import torch.nn.functional as F

from ablate.errors import UsageError

SPLITS = ("train", "val", "test")
DIGITS_TEST_FRACTION = 0.2
DIGITS_TEST_SEED = 0  # the test split stays the same whatever the run's seed, so test numbers compare across seeds
DIGITS_SIZE = 32
IMAGEFOLDER_SIZE = 224

Batch = tuple[torch.Tensor, torch.Tensor]


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


@dataclass(frozen=True)
class DataRequest:
    """What every dataset loader receives; one type so the registry's loaders share a signature."""

    data_dir: Path
    device: torch.device
    val_fraction: float
    seed: int
    download: bool
    image_size: int | None = None  # None: the dataset's own size


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
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}: choose one of {', '.join(self.splits)}")
        return self.splits[split]


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
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    if not 0 < val_fraction < 1:
        raise UsageError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    request = DataRequest(Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR, torch.device(device),
                          val_fraction, seed, download, image_size)
    return DATASETS[name](request)
