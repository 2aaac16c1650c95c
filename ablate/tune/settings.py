"""What defines an ablation run: one frozen dataclass, saved in run.json so ``--resume`` needs only the run's name."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ablate import defaults
from ablate.models import BlockConfig
from ablate.protocols import Protocol
from ablate.registry import lookup
from ablate.space import DEFAULT_OBJECTIVES, DESIGNS, Objective, SearchSpace
from ablate.training import TrainResult, train

TrainFn = Callable[..., TrainResult]


@dataclass(frozen=True)
class RunSettings:
    """Everything that defines an ablation run.

    Attributes:
        space: The block search space (axes, macro per protocol, baselines, objectives).
        protocol: The training recipe every candidate and baseline shares.
        run_dir: The run folder, ``results/<run>``.
        trials: Candidates to train.
        seed: Seed of the sampler, the data splits and training.
        sampler: Optuna sampler name (``tpe``, ``nsga2``, ``grid``, ``random``).
        objectives: What the search optimises; the first is always val top-1.
        scheduler: ``asha`` (early stopping, single objective) or ``none``.
        address: An existing Ray cluster (``auto``, ``HOST:PORT``, ``ray://…``); None starts a local Ray.
        gpus_per_trial: GPUs per trial; None means 1 when the cluster has GPUs, else 0.
        cpus_per_trial: CPUs per trial.
        max_concurrent: Trials at once; None fits as many as the cluster's resources allow.
        storage: Optuna storage URL; None keeps a journal file in the run folder.
        dashboard: Start Ray's dashboard with a local Ray.
        data_dir: Where CIFAR / ImageFolder data lives.
        max_failures: Retries of a crashed trial from its last checkpoint.
        command: The command line, recorded in run.json.
        objectives_from: Where the objectives came from (flag, space file, run.json), for the run header.
        design: ``balanced`` (a balanced set of configs, all trained to the full budget), ``search`` (the sampler
            and ASHA, after a balanced start-up core exempt from early stopping) or ``grid`` (every config); None
            (the default) takes the space file's ``design:``.
        confirm: How many of the best candidates (by the run seed's val top-1) to retrain under fresh training seeds
            once the design is done; the baselines are trained under the same fresh seeds.
        seeds: Fresh training seeds per confirmed candidate and per baseline (used only when ``confirm > 0``).
        train_fn: The trainer; injectable for tests (e.g. one that fails on purpose).

    Example:
        >>> settings = RunSettings(load_space("qlblock"), load_protocol("digits"), Path("results/demo"))  # doctest: +SKIP
        >>> run_ablation(settings).table                                                          # doctest: +SKIP
    """

    space: SearchSpace
    protocol: Protocol
    run_dir: Path
    trials: int = defaults.TRIALS
    seed: int = 0
    sampler: str = "tpe"
    objectives: tuple[Objective, ...] = DEFAULT_OBJECTIVES
    scheduler: str = "asha"
    address: str | None = None
    gpus_per_trial: float | None = None
    cpus_per_trial: float = 1.0
    max_concurrent: int | None = None
    storage: str | None = None
    dashboard: bool = True
    data_dir: str | None = None
    max_failures: int = 2
    command: str = ""
    objectives_from: str = "--objectives"
    design: str | None = None
    confirm: int = defaults.CONFIRM
    seeds: int = defaults.SEEDS
    train_fn: TrainFn = field(default=train, compare=False)

    def __post_init__(self) -> None:
        if self.design is None:  # the space file's design: (frozen) set once, here
            object.__setattr__(self, "design", self.space.design)
        if not 1 <= self.trials <= self.space.size:
            raise ValueError(f"trials must be between 1 and the space's {self.space.size} configs (no block is "
                             f"trained twice), got {self.trials}")
        lookup({d: d for d in DESIGNS}, self.design, "design")
        if self.confirm < 0 or self.seeds < 1:
            raise ValueError(f"confirm must be ≥ 0 and seeds ≥ 1, got {self.confirm} and {self.seeds}")

    @property
    def confirmation_seeds(self) -> tuple[int, ...]:
        """The fresh training seeds that judge the selected candidates: ``seed + 1 … seed + seeds`` (none without
        confirmation). They play no part in selection, which sees only the run's own seed.

        The data splits stay those of the run's seed, so the rows of one training seed form pairs across models.
        """
        return tuple(self.seed + 1 + r for r in range(self.seeds)) if self.confirm else ()

    @property
    def training_seeds(self) -> tuple[int, ...]:
        """Every training seed of the baselines: the run's seed (the design's), then the confirmation seeds."""
        return (self.seed, *self.confirmation_seeds)

    @property
    def macro(self) -> str:
        """The macro network this run builds every model on (the space's choice for the protocol)."""
        return self.space.macro_for(self.protocol.name, self.protocol.macro)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def state_dir(self, block: BlockConfig, seed: int | None = None, kind: str = "trials") -> Path:
        """Where the trainer of one block and training seed keeps its checkpoint and epoch log.

        Named after the block (``trials/relu-dwconv-w1-s0``) rather than Ray's trial id, so that whichever trial
        trains a block resumes the work an interrupted one left. ``kind`` separates candidates (``trials``) from
        baselines (``baselines``), which may share a block but never a folder.
        """
        return self.run_dir / kind / f"{block}-s{self.seed if seed is None else seed}"
