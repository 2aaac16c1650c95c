"""What runs on a Ray worker: the per-process set-up, a model's cost columns, and the candidate trial itself."""

from __future__ import annotations

import math
import resource
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import ray
import torch

from ablate.core.schema import COMPLETED, COUNT_COLUMNS, Status
from ablate.costs import measure
from ablate.data import DatasetSplits, default_device, load_protocol_data
from ablate.models import BlockConfig, build_model
from ablate.models.symmetry import symmetry_columns
from ablate.plugins import ensure_plugins
from ablate.protocols import Protocol
from ablate.records import read_epoch_log
from ablate.tune.status import EARLIER_EPOCHS

if TYPE_CHECKING:  # a Ray task's worker (ablate.tune.jobs) imports this module: Tune only where a trial runs
    from ablate.space import SearchSpace
    from ablate.tune.settings import RunSettings

TRIAL_LATENCY = "trial_latency_ms"


def node_id() -> str:
    """The Ray node this worker runs on (short id), recorded in each row: where a model trained."""
    return ray.get_runtime_context().get_node_id()[:12]


# Temporary folders W&B makes when it is imported (timm imports it wherever it is installed), as module, attribute
WANDB_TEMP_DIRS = (("wandb.sdk.data_types._private", "MEDIA_TMP"),
                   ("wandb.sdk.artifacts.artifact", "Artifact._TMP_DIR"))


def prepare(settings: RunSettings) -> tuple[Protocol, DatasetSplits, torch.device]:
    """This worker's protocol (on the run's macro), data splits (loaded once per process) and device; the run's
    plugins imported first, so their ops can be built."""
    forget_wandb_temp_dirs()
    ensure_plugins(settings.every_plugin)
    device = default_device()
    torch.set_num_threads(max(1, int(settings.cpus_per_trial)))
    protocol = settings.protocol.with_overrides(macro=settings.macro)
    data = load_protocol_data(protocol, data_dir=settings.data_dir, device=device, seed=settings.seed)
    return protocol, data, device


def forget_wandb_temp_dirs() -> None:
    """Remove the temporary folders W&B made at import in this worker (timm imports W&B when it is installed).

    W&B removes them at interpreter exit, which a Ray worker never reaches: Ray ends its workers with a signal, so
    each worker left two folders in the system's temporary directory per run. Nothing on a worker logs to W&B (the
    trackers run on the driver), so they go now.
    """
    for module_name, path in WANDB_TEMP_DIRS:
        found: Any = sys.modules.get(module_name)
        for name in path.split("."):
            found = getattr(found, name, None)
        if hasattr(found, "cleanup"):
            found.cleanup()


def cost_columns(block: BlockConfig, settings: RunSettings, data: DatasetSplits, device: torch.device, *,
                 trial_latency: bool = False) -> dict[str, Any]:
    """Counts; with ``trial_latency`` also a batch-1 latency timed here, before training, on this worker's resources.

    That in-trial latency is what a ``latency`` objective optimises (the searcher needs it from every trial); the
    table's ``latency_ms`` / ``throughput`` are measured later for all models side by side (``timing.time_models``).
    The counts are the network's, whatever the seed: a worker counts each network once (an ablation trains every
    config under several seeds, often on the same worker).
    """
    if trial_latency:
        costs = measure(build_model(block, settings.macro, data.num_classes), data.input_size, device=device,
                        timing=True, batch_size=1, repeats=20)
        return {**{k: getattr(costs, k) for k in COUNT_COLUMNS}, TRIAL_LATENCY: costs.latency_ms}
    return dict(_counts(str(block), settings.macro, data.num_classes, tuple(data.input_size), str(device)))


@lru_cache(maxsize=256)
def _counts(block: str, macro: str, num_classes: int, input_size: tuple[int, ...], device: str) -> tuple:
    costs = measure(build_model(block, macro, num_classes), input_size, device=device, timing=False)
    return tuple((k, getattr(costs, k)) for k in COUNT_COLUMNS)


def symmetry_of(model: torch.nn.Module, data: DatasetSplits) -> dict[str, Any]:
    """The continuous-symmetry columns of a trained model, as the trainer returned it (QLNet's headline property:
    radial blocks keep their logits when each residual stream is rotated, ReLU blocks do not)."""
    try:
        return symmetry_columns(model, data.input_size)
    except ValueError:  # a macro with no stream to rotate: the property is undefined, not false
        return {"symmetry_gap": math.nan, "symmetric": None}


def peak_rss() -> int:
    """This process's peak resident memory in bytes (``getrusage``'s ``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss if sys.platform == "darwin" else maxrss * 1024)


def worker_memory(settings: RunSettings, block: BlockConfig) -> int:
    """The peak resident memory (bytes) of this worker once it has done what a training of ``block`` does first: the
    run's plugins and data (:func:`prepare`), the model's costs, and a few optimizer steps and an evaluation batch
    (:func:`ablate.planning.timing.measure_model`). Run as a Ray task on a training's resources, before any
    training starts: what each training's worker needs (:class:`ablate.tune.cluster.MemoryBudget`)."""
    from ablate.planning.timing import measure_model

    protocol, data, device = prepare(settings)
    cost_columns(block, settings, data, device)
    measure_model(block, protocol, data, device)
    return peak_rss()


def candidate_trainable(config: dict[str, Any], settings: RunSettings) -> None:
    """One Ray Tune trial: count costs, train, report every epoch; the last one once training has returned, with
    the symmetry of the model the trainer returns.

    The trainer checkpoints every epoch into the block's state folder (``RunSettings.state_dir``), which a retried
    trial (FailureConfig) or a restored one (``--resume``) resumes from. That folder, not Ray's checkpoint rotation,
    is the source of truth: Ray snapshots its experiment state only every few seconds, so after a driver kill it may
    point at a rotated-away checkpoint or at a trial it believes unfinished. On a multi-node cluster the results
    folder must be on shared storage, as Ray Tune's storage_path must be anyway.
    """
    from ray import tune

    protocol, data, device = prepare(settings)
    block = settings.space.block_of(config)
    costs = cost_columns(block, settings, data, device,
                         trial_latency=any(o.column == TRIAL_LATENCY for o in settings.objectives))
    state_dir = settings.state_dir(block)
    earlier = [[int(e["epoch"]), float(e["val_top1"])] for e in read_epoch_log(state_dir)]  # a resumed trial's past
    constant = {"block": str(block), "phase": config.get("phase", "search"), "seed": settings.seed, "node": node_id(),
                EARLIER_EPOCHS: earlier, **costs, "status": Status.RUNNING, "reason": ""}

    def report(metrics: dict[str, Any]) -> None:
        if metrics["epoch"] < protocol.epochs:  # the last epoch is reported below, with the trained model's columns
            tune.report({**metrics, **constant})

    result = settings.train_fn(block, protocol, report=report, checkpoint_dir=state_dir, seed=settings.seed,
                               data=data, device=device)
    if result.status == COMPLETED:  # also when it had finished before a killed driver's trial was restored
        tune.report({**result.history[-1], **constant, **symmetry_of(result.model, data)})
    else:  # val_top1 stays in the result: Tune checks every result has its metric
        tune.report({**constant, "status": result.status, "reason": result.reason, "epoch": result.epochs,
                     "val_top1": result.val_top1})


@dataclass(frozen=True)
class TrialLabel:
    """Names a Tune trial by what it trains (``design relu-dwconv-w2 s0``), as Ray's dashboard names the jobs
    (``Job.label``); Tune shows the name in its trial table and the trackers title their runs with it."""

    space: SearchSpace
    seed: int

    def __call__(self, trial: Any) -> str:
        return f"{trial.config.get('phase', 'search')} {self.space.block_of(trial.config)} s{self.seed}"


def make_trainable(settings: RunSettings, resources: dict[str, float]):
    """The candidate trainable with the run's settings bound and each trial's resources attached."""
    from ray import tune

    return tune.with_resources(tune.with_parameters(candidate_trainable, settings=settings), resources)
