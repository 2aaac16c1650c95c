"""Train one candidate block under a protocol, with per-epoch checkpoints, metrics and exact resume.

The contract with the orchestrator (Ray Tune): after every epoch the trainer first writes a checkpoint, then calls
``report(metrics)``; an external scheduler stops a trial by raising from ``report`` (never caught here). Calling
``train`` again with the same ``checkpoint_dir`` resumes where the checkpoint left off and, on CPU with the same
seed, ends with exactly the numbers an uninterrupted run gives.
"""

from __future__ import annotations

import math
import os
import random
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

import numpy as np
import torch
from torch import nn

from ablate.core.errors import UsageError
from ablate.core.files import write_atomic
from ablate.core.schema import COMPLETED, FAILED
from ablate.data import DatasetSplits, check_data, default_device, load_protocol_data
from ablate.models import BlockConfig, build_model
from ablate.protocols import OPTIMIZERS, Protocol, enabled, load_protocol, lr_factor
from ablate.records import (
    EPOCH_LOG_NAME,
    PREDICTIONS_NAME,
    append_epoch_log,
    read_epoch_log,
    read_predictions,
    save_predictions,
)

CHECKPOINT_NAME = "checkpoint.pt"
EVAL_BATCH_SIZE = 512  # the largest evaluation batch (see eval_batch_size)

Report = Callable[[dict[str, Any]], Any]


@dataclass
class TrainResult:
    """Outcome of one training run; top-k in percent; ``test_top1`` is NaN unless completed."""

    config: str
    protocol: str
    status: str
    reason: str
    epochs: int
    history: list[dict[str, Any]] = field(default_factory=list)
    val_top1: float = math.nan
    val_top5: float = math.nan
    val_loss: float = math.nan
    test_top1: float = math.nan
    train_seconds: float = 0.0
    seed: int = 0
    correct: dict[str, np.ndarray] = field(default_factory=dict)  # split → per-image top-1 hit (completed only)
    model: nn.Module | None = field(default=None, repr=False, compare=False)  # the trained model, in eval mode

    def as_dict(self) -> dict[str, Any]:
        """The outcome's values, without the model."""
        return {k: v for k, v in asdict(replace(self, model=None)).items() if k != "model"}


@dataclass
class Precision:
    """How the forward pass runs: autocast dtype (None = fp32) and whether fp16 needs a GradScaler."""

    dtype: torch.dtype | None
    scaler: torch.amp.GradScaler

    def autocast(self, device: torch.device) -> ContextManager:
        return torch.autocast(device.type, dtype=self.dtype) if self.dtype is not None else nullcontext()


@dataclass
class Run:
    """Everything that changes during training and goes into a checkpoint."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    precision: Precision
    generator: torch.Generator
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def choose_precision(protocol: Protocol, device: torch.device) -> Precision:
    """AMP only on CUDA: bf16 where supported (no scaler needed), else fp16 with a GradScaler; fp32 on CPU."""
    if not enabled(protocol, "amp", device):
        return Precision(None, torch.amp.GradScaler("cuda", enabled=False))
    if torch.cuda.is_bf16_supported():
        return Precision(torch.bfloat16, torch.amp.GradScaler("cuda", enabled=False))
    return Precision(torch.float16, torch.amp.GradScaler("cuda"))


def eval_batch_size(protocol: Protocol) -> int:
    """The evaluation batch: the training batch, at most :data:`EVAL_BATCH_SIZE`. A forward pass without autograd
    holds a few activations at a time where a training step holds every layer's, so evaluating never needs more
    memory than training does (at 512 images, a digits model's evaluation took 500 MiB more than its training
    steps: ``benchmarks/worker_memory.py``)."""
    return min(EVAL_BATCH_SIZE, protocol.batch_size)


def uses_channels_last(protocol: Protocol, device: torch.device) -> bool:
    return enabled(protocol, "channels_last", device)


def make_run(config: BlockConfig, protocol: Protocol, data: DatasetSplits, device: torch.device, seed: int) -> Run:
    """Fresh model, optimizer, per-step LambdaLR schedule and data generator, all seeded."""
    seed_everything(seed)
    model = build_model(config, protocol.macro, data.num_classes).to(device)
    if uses_channels_last(protocol, device):
        model = model.to(memory_format=torch.channels_last)
    optimizer = OPTIMIZERS[protocol.optimizer](model, protocol)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(protocol, steps_per_epoch(protocol, data)))
    generator = torch.Generator(device=data.device).manual_seed(seed)
    return Run(model, optimizer, scheduler, choose_precision(protocol, device), generator)


def steps_per_epoch(protocol: Protocol, data: DatasetSplits) -> int:
    """Matches the training loader, which drops the last partial batch."""
    return max(1, data.size("train") // protocol.batch_size)


def rng_states(run: Run) -> dict[str, Any]:
    states = {"torch": torch.get_rng_state(), "data": run.generator.get_state(), "python": random.getstate(),
              "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(run: Run, states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    run.generator.set_state(states["data"])
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(run: Run, directory: Path, identity: dict[str, Any]) -> None:
    """Atomic (``ablate.core.files.write_atomic``): a kill leaves the previous checkpoint or this one, never half."""
    state = {
        "identity": identity, "epoch": run.epoch, "history": run.history, "train_seconds": run.train_seconds,
        "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(), "scaler": run.precision.scaler.state_dict(), "rng": rng_states(run),
    }
    write_atomic(directory / CHECKPOINT_NAME, lambda tmp: torch.save(state, tmp))


def load_checkpoint(run: Run, directory: Path, identity: dict[str, Any]) -> None:
    """Resume ``run`` in place from ``directory``'s checkpoint, refusing one written for another run."""
    state = torch.load(directory / CHECKPOINT_NAME, map_location="cpu", weights_only=False)
    if state["identity"] != identity:
        raise UsageError(f"checkpoint in {directory} belongs to another run "
                         f"({state['identity']['config']}, protocol {state['identity']['protocol']['name']}): "
                         f"delete {directory} to train this run from scratch there")
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.precision.scaler.load_state_dict(state["scaler"])
    restore_rng_states(run, state["rng"])
    run.epoch, run.history, run.train_seconds = state["epoch"], state["history"], state["train_seconds"]


def train_epoch(run: Run, step_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], protocol: Protocol,
                data: DatasetSplits, device: torch.device) -> tuple[float, int]:
    """One pass over the training split; the loss is summed on the device and synced once at the end."""
    run.model.train()
    loss_sum, seen = torch.zeros((), device=device), 0
    for images, labels in data.loader("train", protocol.batch_size, train=True, generator=run.generator,
                                      augmentation=protocol.augmentation,
                                      channels_last=uses_channels_last(protocol, device)):
        loss_sum += step_fn(images, labels) * labels.shape[0]
        seen += labels.shape[0]
    return loss_sum.item() / max(1, seen), seen


def make_step(run: Run, criterion: nn.Module, forward: nn.Module, device: torch.device
              ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """One optimizer step; returns the detached loss (no host sync)."""
    scaler = run.precision.scaler

    def step(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with run.precision.autocast(device):
            loss = criterion(forward(images), labels)
        run.optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(run.optimizer)
        scaler.update()
        run.scheduler.step()
        return loss.detach().float()

    return step


@torch.no_grad()
def evaluate(forward: nn.Module, run: Run, data: DatasetSplits, split: str, device: torch.device,
             channels_last: bool, per_image: bool = False, batch_size: int = EVAL_BATCH_SIZE) -> dict[str, Any]:
    """Loss and top-1/top-5 (percent) over a split in batches of ``batch_size``, accumulated on the device with
    one sync; with ``per_image`` also ``correct``, each image's top-1 hit in the split's stored order (a bool numpy
    array)."""
    run.model.eval()
    totals = torch.zeros(3, device=device, dtype=torch.float64)
    k = min(5, data.num_classes)
    correct = []
    for images, labels in data.loader(split, batch_size, channels_last=channels_last):
        with run.precision.autocast(device):
            logits = forward(images).float()
        hits = logits.topk(k, dim=1).indices == labels[:, None]
        if per_image:
            correct.append(hits[:, 0])
        hits = hits.double()
        loss = nn.functional.cross_entropy(logits, labels, reduction="sum").double()
        totals += torch.stack([loss, hits[:, 0].sum(), hits.amax(dim=1).sum()])
    loss, top1, top5 = (totals / max(1, data.size(split))).tolist()
    metrics: dict[str, Any] = {"loss": loss, "top1": 100 * top1, "top5": 100 * top5}
    if per_image:
        metrics["correct"] = torch.cat(correct).cpu().numpy() if correct else np.zeros(0, dtype=bool)
    return metrics


def run_epoch(run: Run, step_fn: Callable, forward: nn.Module, protocol: Protocol, data: DatasetSplits,
              device: torch.device, final: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Train one epoch, then validate: the metric dict the orchestrator receives and, for the ``final`` epoch, the
    per-image evidence of every evaluation split (the test split is evaluated only then; ``test_top1`` joins the
    metrics)."""
    start = time.perf_counter()
    train_loss, seen = train_epoch(run, step_fn, protocol, data, device)
    train_time = time.perf_counter() - start
    lr = run.optimizer.param_groups[0]["lr"]
    channels_last = uses_channels_last(protocol, device)
    batch = eval_batch_size(protocol)
    val = evaluate(forward, run, data, "val", device, channels_last, per_image=final, batch_size=batch)
    metrics = {
        "epoch": run.epoch + 1, "train_loss": train_loss, "val_loss": val["loss"], "val_top1": val["top1"],
        "val_top5": val["top5"], "lr": lr, "epoch_seconds": time.perf_counter() - start,
        "images_per_second": seen / max(train_time, 1e-9),
    }
    if not final:
        return metrics, {}
    test = evaluate(forward, run, data, "test", device, channels_last, per_image=True, batch_size=batch)
    metrics["test_top1"] = test["top1"]
    return metrics, {"val": val["correct"], "test": test["correct"]}


def resolve_inputs(config: BlockConfig | str, protocol: Protocol | str, data: DatasetSplits | None,
                   data_dir: str | os.PathLike | None, device: str | torch.device | None, seed: int
                   ) -> tuple[BlockConfig, Protocol, DatasetSplits, torch.device]:
    config = BlockConfig.coerce(config)
    protocol = load_protocol(protocol)
    device = torch.device(device) if device is not None else (data.device if data is not None else default_device())
    data = data if data is not None else load_protocol_data(protocol, data_dir=data_dir, device=device, seed=seed)
    check_data(protocol, data)
    return config, protocol, data, device


def run_identity(config: BlockConfig, protocol: Protocol, data: DatasetSplits, seed: int) -> dict[str, Any]:
    """What a checkpoint must match to be resumed (the protocol's prose fields may change freely)."""
    recipe = {k: v for k, v in protocol.as_dict().items() if k not in ("description", "expected")}
    return {"config": str(config), "protocol": recipe, "seed": seed, "dataset": data.name,
            "input_size": data.input_size}


@contextmanager
def cudnn_autotuning(device: torch.device) -> Iterator[None]:
    """cuDNN's autotuner on while a CUDA model trains (fixed shapes: the fastest kernels are picked once), and the
    process's own setting back afterwards."""
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = previous or device.type == "cuda"
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def train(config: BlockConfig | str, protocol: Protocol | str = "digits", *, report: Report | None = None,
          checkpoint_dir: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
          device: str | torch.device | None = None, seed: int = 0, data: DatasetSplits | None = None) -> TrainResult:
    """Train ``config`` under ``protocol``; checkpoint then ``report(metrics)`` after every epoch.

    Args:
        config: the block (or its string) to build on the protocol's macro.
        protocol: a Protocol or a shipped protocol's name.
        report: called with each epoch's metrics after its checkpoint; exceptions it raises propagate (that is
            how a scheduler stops a trial).
        checkpoint_dir: where to checkpoint every epoch; a checkpoint already there (of the same run) is resumed.
        data_dir: where CIFAR / ImageFolder data lives.
        device: default CUDA when available, else CPU.
        seed: the training seed (init, data order, augmentation) and, when ``data`` is not given, the split seed.
        data: splits already loaded (``load_protocol_data``), reused across trials of one process.

    Returns:
        TrainResult: ``completed`` with the last epoch's validation metrics and the test top-1, or ``failed`` with
        the reason (a non-finite training loss ends the run instead of raising); either way with the model as
        trained (in eval mode, on ``device``), so that a caller measures it without reloading the checkpoint.

    Raises:
        UsageError: data that does not match the protocol, or a checkpoint written for another run.

    Example:
        >>> train("relu-dwconv-w1", "digits", device="cpu").val_top1  # doctest: +SKIP
    """
    config, protocol, data, device = resolve_inputs(config, protocol, data, data_dir, device, seed)
    run = make_run(config, protocol, data, device, seed)
    identity = run_identity(config, protocol, data, seed)
    directory = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if directory is not None and (directory / CHECKPOINT_NAME).is_file():
        load_checkpoint(run, directory, identity)
    forward = torch.compile(run.model) if enabled(protocol, "compile", device) else run.model
    step_fn = make_step(run, nn.CrossEntropyLoss(label_smoothing=protocol.label_smoothing), forward, device)

    def result(status: str, reason: str = "", test_top1: float = math.nan,
               correct: dict[str, np.ndarray] | None = None) -> TrainResult:
        last = run.history[-1] if run.history else {}
        return TrainResult(str(config), protocol.name, status, reason, run.epoch, run.history,
                           last.get("val_top1", math.nan), last.get("val_top5", math.nan),
                           last.get("val_loss", math.nan), test_top1, run.train_seconds, seed, correct or {},
                           run.model.eval())

    correct = read_predictions(directory) if directory is not None else {}
    with cudnn_autotuning(device):
        while run.epoch < protocol.epochs:
            # the test split and per-image evidence in the last report: a scheduler may stop the trial right after it
            metrics, evidence = run_epoch(run, step_fn, forward, protocol, data, device,
                                          final=run.epoch + 1 == protocol.epochs)
            if not math.isfinite(metrics["train_loss"]):
                return result(FAILED, f"non-finite loss at epoch {run.epoch + 1}")
            run.epoch += 1
            if evidence:
                correct = evidence
                if directory is not None:  # before the checkpoint: a completed checkpoint always has its evidence
                    save_predictions(directory, correct)
            run.history.append(metrics)
            run.train_seconds += metrics["epoch_seconds"]
            if directory is not None:
                save_checkpoint(run, directory, identity)
                append_epoch_log(directory, metrics)
            if report is not None:
                report(metrics)
        return result(COMPLETED, test_top1=run.history[-1]["test_top1"], correct=correct)


__all__ = ["EPOCH_LOG_NAME", "PREDICTIONS_NAME", "TrainResult", "load_protocol_data", "read_epoch_log",
           "read_predictions", "train"]
