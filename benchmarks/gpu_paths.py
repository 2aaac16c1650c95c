"""bench_gpu's two training paths over synthetic data: ablate's trainer and a plain reference loop, with the
precision and memory format the trainer picks and the per-model rate measurement."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from gpu_common import PROTOCOL, SEED, Settings, interleaved_rates, timed
from torch import nn

from ablate.costs import count_ops
from ablate.data import DataRequest, DatasetSplits
from ablate.data.splits import seeded_split, tensor_splits
from ablate.models import BlockConfig, build_model
from ablate.protocols import Protocol, load_protocol
from ablate.training import Run, choose_precision, make_run, make_step, train_epoch, uses_channels_last

# --- data: synthetic CIFAR-shaped uint8 images through ablate.data's real tensor splits ---


def total_for_train(train_images: int, val_fraction: float) -> int:
    """The dataset size whose seeded train split (``splits.seeded_split``) keeps exactly ``train_images``."""
    total = max(train_images, int(train_images / (1 - val_fraction)) - 2)  # just below the answer
    while len(seeded_split(total, val_fraction, SEED)[0]) < train_images:
        total += 1
    return total


def synthetic_splits(protocol: Protocol, device: torch.device, batches: int, seed: int = SEED) -> DatasetSplits:
    """Random uint8 (N, 3, 32, 32) images and labels as ``tensor_splits`` holds them, ``batches`` full train batches."""
    total = total_for_train(batches * protocol.batch_size, protocol.val_fraction)
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (total, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (total,), generator=generator)
    request = DataRequest(Path("."), device, protocol.val_fraction, seed, False, None)
    return tensor_splits(protocol.dataset, 10, images, labels, images[:2], labels[:2], request)


def reference_batches(data: DatasetSplits, batch_size: int,
                      channels_last: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Pre-generated, normalized device batches of the train split for the plain loop (no augmentation)."""
    split = data.splits["train"]
    mean = torch.tensor(data.mean, device=data.device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=data.device).view(1, -1, 1, 1)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    images = ((split.images.float() / 255 - mean) / std).contiguous(memory_format=memory_format)
    return [(images[i:i + batch_size], split.labels[i:i + batch_size])
            for i in range(0, len(split) - batch_size + 1, batch_size)]


# --- the two training paths ---


@dataclass
class TrainerPath:
    """ablate's trainer as ``train()`` drives it: make_run, make_step, train_epoch over TensorSplit data."""

    run: Run
    step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    protocol: Protocol
    data: DatasetSplits
    first: DatasetSplits

    @classmethod
    def build(cls, config: BlockConfig, protocol: Protocol, data: DatasetSplits, first: DatasetSplits,
              compile_backend: str | None = None) -> "TrainerPath":
        run = make_run(config, protocol, data, data.device, SEED)
        forward = torch.compile(run.model, backend=compile_backend) if compile_backend else run.model
        step = make_step(run, nn.CrossEntropyLoss(label_smoothing=protocol.label_smoothing), forward, data.device)
        return cls(run, step, protocol, data, first)

    def epoch(self, data: DatasetSplits | None = None) -> int:
        """One pass over the split (the timed one by default); ``train_epoch`` syncs once, at its end."""
        data = self.data if data is None else data
        loss, seen = train_epoch(self.run, self.step, self.protocol, data, data.device)
        if not math.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss {loss} in the trainer path")
        return seen

    def first_step(self) -> int:
        return self.epoch(self.first)


@dataclass
class ReferenceLoop:
    """A plain hand-written loop: the same model, batch, precision and memory format; device tensors, no framework."""

    model: nn.Module
    forward: nn.Module
    optimizer: torch.optim.Optimizer
    batches: list[tuple[torch.Tensor, torch.Tensor]]
    dtype: torch.dtype | None

    @classmethod
    def build(cls, config: BlockConfig, protocol: Protocol, trainer: TrainerPath,
              compile_backend: str | None = None) -> "ReferenceLoop":
        device = trainer.data.device
        channels_last = uses_channels_last(protocol, device)
        torch.manual_seed(SEED)
        model = build_model(config, protocol.macro, trainer.data.num_classes).to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        decayed = [p for p in model.parameters() if p.ndim > 1]  # no decay on biases and BN, as the trainer
        groups = [{"params": decayed, "weight_decay": protocol.weight_decay},
                  {"params": [p for p in model.parameters() if p.ndim <= 1], "weight_decay": 0.0}]
        optimizer = torch.optim.SGD(groups, lr=protocol.lr, momentum=protocol.momentum, nesterov=protocol.nesterov)
        forward = torch.compile(model, backend=compile_backend) if compile_backend else model
        batches = reference_batches(trainer.data, protocol.batch_size, channels_last)
        return cls(model, forward, optimizer, batches, trainer.run.precision.dtype)

    def steps(self, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> int:
        self.model.train()
        device_type = batches[0][0].device.type
        for images, labels in batches:
            with torch.autocast(device_type, dtype=self.dtype, enabled=self.dtype is not None):
                loss = F.cross_entropy(self.forward(images), labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return sum(len(labels) for _, labels in batches)

    def epoch(self) -> int:
        return self.steps(self.batches)

    def first_step(self) -> int:
        return self.steps(self.batches[:1])


def describe_precision(protocol: Protocol, device: torch.device) -> str:
    """The precision and memory format the trainer chooses for ``protocol`` on ``device``."""
    names = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast + GradScaler"}
    dtype = names[choose_precision(protocol, device).dtype]
    return f"{dtype}, {'channels_last' if uses_channels_last(protocol, device) else 'contiguous (NCHW)'}"


@dataclass
class ModelRates:
    """The rates of one model in the trainer / compile sections (images per second)."""

    config: str
    rates: dict[str, float]
    first_step_s: dict[str, float] = field(default_factory=dict)
    macs: int = 0


def prepare(paths: dict[str, Any], device: torch.device) -> dict[str, float]:
    """Each path's first step (compile and autotuning happen here), timed; then one untimed warm-up epoch."""
    first = {name: timed(path.first_step, device)[0] for name, path in paths.items()}
    for path in paths.values():
        path.epoch()
    return first


def trainer_paths(config: BlockConfig, protocol: Protocol, data: DatasetSplits, first: DatasetSplits,
                  backend: str | None, with_eager_trainer: bool) -> dict[str, Any]:
    """Trainer and reference loop, both compiled with ``backend`` (None: eager); optionally an eager trainer too."""
    trainer = TrainerPath.build(config, protocol, data, first, backend)
    paths: dict[str, Any] = {"trainer": trainer, "reference": ReferenceLoop.build(config, protocol, trainer, backend)}
    if with_eager_trainer:
        paths["trainer-eager"] = TrainerPath.build(config, protocol, data, first, None)
    return paths


def measure_model(config: BlockConfig, protocol: Protocol, data: DatasetSplits, first: DatasetSplits,
                  settings: Settings, backend: str | None) -> ModelRates:
    paths = trainer_paths(config, protocol, data, first, backend, with_eager_trainer=backend is not None)
    first_step = prepare(paths, settings.device)
    rates = interleaved_rates({name: path.epoch for name, path in paths.items()}, settings.rounds, settings.device)
    model = paths["trainer"].run.model
    macs = count_ops(model, data.input_size)[0]
    return ModelRates(str(config), rates, first_step, macs)


def trainer_protocol(settings: Settings) -> Protocol:
    protocol = load_protocol(PROTOCOL)
    return protocol.with_overrides(macro=settings.macro, batch_size=settings.batch_size)
