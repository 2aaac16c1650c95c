"""Trainer data path vs the usual tutorial loop: same model, optimizer and number of steps, measured in one run.

(a) trainer: digits as a uint8 tensor on the device, batched crop+flip, normalization on the batch
    (``ablate.data.DatasetSplits.loader``).
(b) reference: a torch DataLoader over the same images, converted to PIL per sample as torchvision's CIFAR10
    does, with per-sample RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize.

Both train ``relu-dwconv-w1`` with the same SGD. By default in a small skeleton (ResNet's 7×7/2 stem with 16
channels and one 32-channel stage): the default ``cifar`` macro costs ~10–20 ms per image on a CPU thread, which
swamps any data path (``--macro cifar`` measures that). Each path gets one core: ``--threads 1`` and a reference
with ``num_workers=0``; the tutorial's ``num_workers=2`` reference (which also gets the second core) is measured too.
The last line printed is the equal-CPU ratio of throughputs.

    python benchmarks/bench_trainer.py [--steps 90] [--batch-size 64] [--threads 1] [--macro small|cifar]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from typing import Callable, Iterator

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image
from torch import nn

from ablate.data import Augmentation, DatasetSplits, load_dataset
from ablate.models import BlockConfig, build_model
from ablate.models.networks import MacroConfig

BLOCK = BlockConfig.parse("relu-dwconv-w1")
SMALL = MacroConfig("small", "imagenet", 16, (1,), (32,), (3, 32, 32),
                    "ResNet's 7x7/2 stem with 16 channels, then one 32-channel stage")
MACROS: dict[str, MacroConfig | str] = {"small": SMALL, "cifar": "cifar"}

Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]


class TutorialDataset(torch.utils.data.Dataset):
    """HWC uint8 images turned into PIL per sample, then per-sample transforms (torchvision CIFAR10 style)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def reference_batches(data: DatasetSplits, batch_size: int, workers: int) -> Batches:
    split = data.splits["train"]
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(data.mean, data.std)])
    dataset = TutorialDataset(split.images.permute(0, 2, 3, 1).numpy(), split.labels.numpy(), transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                                         num_workers=workers, persistent_workers=workers > 0,
                                         generator=torch.Generator().manual_seed(0))
    return itertools.chain.from_iterable(loader for _ in itertools.count())


def trainer_batches(data: DatasetSplits, batch_size: int) -> Batches:
    generator = torch.Generator().manual_seed(0)
    augmentation = Augmentation(crop_padding=4, hflip=True)
    return itertools.chain.from_iterable(
        data.loader("train", batch_size, train=True, generator=generator, augmentation=augmentation)
        for _ in itertools.count())


def make_step(macro: MacroConfig | str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    torch.manual_seed(0)
    model = build_model(BLOCK, macro, 10).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    criterion = nn.CrossEntropyLoss()

    def step(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = criterion(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def throughput(batches: Batches, step: Callable, steps: int, batch_size: int) -> float:
    """Images per second over ``steps`` training steps, data loading included."""
    start = time.perf_counter()
    for images, labels in itertools.islice(batches, steps):
        step(images, labels)
    return steps * batch_size / (time.perf_counter() - start)


def data_only(batches: Batches, batches_per_round: int, batch_size: int) -> float:
    """Images per second of the data path alone (no model), for reference."""
    start = time.perf_counter()
    for _ in itertools.islice(batches, batches_per_round):
        pass
    return batches_per_round * batch_size / (time.perf_counter() - start)


def measure(paths: dict[str, Batches], macro: MacroConfig | str, args: argparse.Namespace
            ) -> dict[str, float]:
    """Interleaved rounds (A, B, C, A, B, C, …) after a warm-up; the median per path damps other processes' noise."""
    steps = {name: make_step(macro) for name in paths}
    results: dict[str, list[float]] = {name: [] for name in paths}
    for name, batches in paths.items():
        throughput(batches, steps[name], args.warmup, args.batch_size)
    for _ in range(args.rounds):
        for name, batches in paths.items():
            results[name].append(throughput(batches, steps[name], args.steps // args.rounds, args.batch_size))
    return {name: statistics.median(values) for name, values in results.items()}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=90, help="timed steps per path (split into rounds)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the model in every path")
    parser.add_argument("--macro", choices=list(MACROS), default="small")
    return parser.parse_args()


LABELS = {
    "trainer": "trainer data path (tensor-resident, batched crop+flip)",
    "reference": "reference loop (DataLoader workers=0, per-sample PIL)",
    "reference-2w": "reference loop (DataLoader workers=2, per-sample PIL)",
}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("digits")
    macro = MACROS[args.macro]
    described = f"{macro.name!r} ({macro.description})" if isinstance(macro, MacroConfig) else repr(macro)
    print(f"model: {BLOCK} in macro {described}, same model + SGD in every path")
    print(f"data: digits train split at 32x32 ({data.size('train')} images), batch {args.batch_size}, "
          f"{args.steps} timed steps per path, {args.threads} torch thread(s)")
    paths = {
        "trainer": trainer_batches(data, args.batch_size),
        "reference": reference_batches(data, args.batch_size, 0),
        "reference-2w": reference_batches(data, args.batch_size, 2),
    }
    for name in ("trainer", "reference"):
        rate = data_only(paths[name], args.steps // args.rounds, args.batch_size)
        print(f"data path alone, {LABELS[name]}: {rate:9.1f} images/s")
    rates = measure(paths, macro, args)
    for name, rate in rates.items():
        print(f"training, {LABELS[name]}: {rate:9.1f} images/s")
    print(f"ratio (trainer / tutorial loop with workers=2, which also gets the 2nd core): "
          f"{rates['trainer'] / rates['reference-2w']:.2f}x")
    print(f"ratio (trainer / reference loop): {rates['trainer'] / rates['reference']:.2f}x")


if __name__ == "__main__":
    main()
