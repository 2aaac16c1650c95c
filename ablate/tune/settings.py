"""What defines an ablation run: one frozen dataclass, saved in run.json so ``--resume`` needs only the run's name."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ablate.core import defaults
from ablate.core.errors import UsageError
from ablate.core.files import damaged
from ablate.core.registry import lookup
from ablate.core.yamlfile import one_line
from ablate.models import BlockConfig
from ablate.plugins import Plugin, load_plugins
from ablate.protocols import Protocol
from ablate.protocols.recipe import build_protocol
from ablate.space import DEFAULT_OBJECTIVES, DESIGNS, Objective, SearchSpace, load_space
from ablate.space.design import design_points
from ablate.trackers import check_trackers, default_trackers
from ablate.training import TrainResult, train

TrainFn = Callable[..., TrainResult]


@dataclass(frozen=True)
class RunSettings:
    """Everything that defines an ablation run.

    Attributes:
        space: The block search space (axes, macro per protocol, baselines, objectives).
        protocol: The training recipe every candidate and baseline shares.
        run_dir: The run folder, ``results/<run>``.
        trials: Candidates to train (at most the space's configs; a grid trains them all, an ablation its design).
        seed: Seed of the sampler, the data splits and training.
        sampler: Optuna sampler name (``defaults.SAMPLERS``); None: ``nsga2`` with several objectives, else
            ``tpe``.
        objectives: What the search optimises; the first is always val top-1.
        scheduler: ``asha`` (early stopping, single objective) or ``none``.
        address: An existing Ray cluster (``auto``, ``HOST:PORT``, ``ray://…``); None starts a local Ray.
        gpus_per_trial: GPUs per trial; None means 1 when the cluster has GPUs, else 0.
        cpus_per_trial: CPUs per trial.
        max_concurrent: Trials at once; None fits as many as the cluster's resources allow.
        storage: Optuna storage URL; None keeps a journal file in the run folder.
        store: Where every trained model is kept across runs (``ablate.store``): a SQLite file's path or a database
            URL (``postgresql://…``); None: ``ablate.db`` in the results folder, beside the run folder.
        study: The study the run belongs to (``report --study NAME`` pools the study's runs from the store); None:
            none.
        dashboard: Start Ray's dashboard with a local Ray.
        data_dir: Where CIFAR / ImageFolder data lives.
        max_failures: Retries of a crashed trial from its last checkpoint.
        command: The command line, recorded in run.json.
        objectives_from: Where the objectives came from (flag, space file, run.json), for the run header.
        design: ``ablation`` (the space's reference block and every block that changes one axis from it, each and
            the baselines under ``seeds`` training seeds; nothing is selected), ``balanced`` (a balanced set of
            configs, all trained to the full budget), ``search`` (the sampler and ASHA, after a balanced start-up
            core exempt from early stopping) or ``grid`` (every config); None (the default) takes the space file's
            ``design:``. The ablation's reference is ``space.reference`` (``--reference`` replaces it).
        confirm: How many of the best candidates (by the run seed's val top-1) to retrain under fresh training seeds
            once the design is done; the baselines are trained under the same fresh seeds (not used by
            ``ablation``, which selects nothing).
        seeds: Fresh training seeds per confirmed candidate and per baseline (used only when ``confirm > 0``); for
            ``ablation``, the training seeds of every config and baseline, the run's seed among them.
        plugins: Plugin modules named for the run (``--plugin``), besides those its space file names.
        trackers: Experiment trackers every training is written to (``ablate.trackers.TRACKERS``: tensorboard,
            mlflow, wandb); TensorBoard by default where tensorboardX is installed.
        train_fn: The trainer; injectable for tests (e.g. one that fails on purpose).

    Example:
        >>> settings = RunSettings(load_space("qlblock"), load_protocol("digits"),  # doctest: +SKIP
        ...                        Path("results/demo"))
        >>> run_ablation(settings).table  # doctest: +SKIP
    """

    space: SearchSpace
    protocol: Protocol
    run_dir: Path
    trials: int = defaults.TRIALS
    seed: int = 0
    sampler: str | None = None
    objectives: tuple[Objective, ...] = DEFAULT_OBJECTIVES
    scheduler: str = "asha"
    address: str | None = None
    gpus_per_trial: float | None = None
    cpus_per_trial: float = 1.0
    max_concurrent: int | None = None
    storage: str | None = None
    store: str | None = None
    study: str | None = None
    dashboard: bool = True
    data_dir: str | None = None
    max_failures: int = 2
    command: str = ""
    objectives_from: str = "--objectives"
    design: str | None = None
    confirm: int = defaults.CONFIRM
    seeds: int = defaults.SEEDS
    plugins: tuple[Plugin, ...] = ()
    trackers: tuple[str, ...] = field(default_factory=default_trackers)
    train_fn: TrainFn = field(default=train, compare=False)

    def __post_init__(self) -> None:
        """Every check of a run's settings, in one place (the command line maps each to its one-line error).

        Raises:
            UsageError: A value out of range or unknown, or a design the space cannot run (one line, naming the
                flag that sets it).
        """
        if self.design is None:  # the space file's design: (frozen) set once, here
            object.__setattr__(self, "design", self.space.design)
        lookup({d: d for d in DESIGNS}, self.design, "design", UsageError)
        if self.sampler is None:  # several objectives need a multi-objective sampler
            object.__setattr__(self, "sampler", "nsga2" if self.multi_objective else "tpe")
        lookup({s: s for s in defaults.SAMPLERS}, self.sampler, "sampler", UsageError)
        lookup({s: s for s in defaults.SCHEDULERS}, self.scheduler, "scheduler", UsageError)
        object.__setattr__(self, "trackers", tuple(dict.fromkeys(self.trackers)))
        check_trackers(self.trackers)
        for value, flag, low in ((self.trials, "--trials", 1), (self.max_concurrent, "--max-concurrent", 1),
                                 (self.confirm, "--confirm", 0), (self.seeds, "--seeds", 1)):
            if value is not None and value < low:
                raise UsageError(f"{flag} must be at least {low}, got {value}")
        if self.cpus_per_trial <= 0 or (self.gpus_per_trial is not None and self.gpus_per_trial < 0):
            raise UsageError(f"--cpus-per-trial must be > 0 and --gpus-per-trial ≥ 0, got {self.cpus_per_trial} and "
                             f"{self.gpus_per_trial}")
        if self.ablation and self.space.reference is None:
            raise UsageError(f"--design ablation needs a reference block: pass --reference CONFIG (a point of space "
                             f"{self.space.name!r}) or add `reference: CONFIG` to {self.space.path.name}")
        if self.ablation and self.seeds < 2:
            raise UsageError(f"an ablation judges each config on its own seeds: --seeds must be at least 2 (3 or "
                             f"more to detect much), got {self.seeds}")
        # no block is trained twice, so the space caps the trials; a grid or an ablation trains its whole design
        trials = (len(design_points(self.space, "ablation", self.trials, self.seed)) if self.ablation
                  else self.space.size if self.design == "grid" else min(self.trials, self.space.size))
        object.__setattr__(self, "trials", trials)

    @property
    def ablation(self) -> bool:
        """Whether the run is an ablation design: every model is evidence, nothing is selected."""
        return self.design == "ablation"

    @property
    def every_plugin(self) -> tuple[Plugin, ...]:
        """The run's plugins and its space file's, each once: what every worker imports."""
        return tuple({p.spec: p for p in (*self.plugins, *self.space.plugins)}.values())

    def to_json(self) -> dict[str, Any]:
        """The settings as run.json keeps them (plain types): what ``from_json`` and ``--resume`` read back."""
        return {
            "command": self.command, "space": {"name": self.space.name, "path": str(self.space.path),
                                               "axes": [a.name for a in self.space.axes],
                                               "choices": {a.name: list(a.choices) for a in self.space.axes}},
            "protocol": self.protocol.as_dict(), "macro": self.macro,
            "objectives": [{"metric": o.metric, "column": o.column, "direction": o.direction} for o in self.objectives],
            "objectives_from": self.objectives_from, "sampler": self.sampler, "scheduler": self.scheduler,
            "seed": self.seed, "design": self.design, "reference": self.space.reference, "confirm": self.confirm,
            "seeds": self.seeds,
            "trials_requested": self.trials, "address": self.address, "gpus_per_trial": self.gpus_per_trial,
            "cpus_per_trial": self.cpus_per_trial, "max_concurrent": self.max_concurrent, "storage": self.storage,
            "store": self.store, "study": self.study,
            "data_dir": self.data_dir, "max_failures": self.max_failures, "dashboard": self.dashboard,
            "plugins": [p.as_dict() for p in self.plugins], "space_plugins": [p.as_dict() for p in self.space.plugins],
            "trackers": list(self.trackers),
        }

    @classmethod
    def from_json(cls, meta: dict[str, Any], run_dir: Path, **overrides: Any) -> "RunSettings":
        """The settings a run was started with, from its run.json (``to_json``): its plugins are imported again,
        its space file is loaded again from its path.

        Args:
            meta: run.json's content.
            run_dir: The run folder.
            **overrides: Fields to replace (``--resume`` may point at another ``address`` or ``data_dir``).

        Raises:
            UsageError: The space file or a plugin is gone or now fails to load, or run.json lacks a key or holds a
                value of the wrong kind (one line naming it).
        """
        try:
            return cls._from_json(meta, run_dir, **overrides)
        except KeyError as err:
            raise damaged(run_dir / "run.json", f"no {err.args[0]!r} key, which a run's run.json always has") from None
        except (TypeError, AttributeError, ValueError) as err:  # a key holding a value of another kind
            raise damaged(run_dir / "run.json", f"a value of the wrong kind: {one_line(str(err))}") from None

    @classmethod
    def _from_json(cls, meta: dict[str, Any], run_dir: Path, **overrides: Any) -> "RunSettings":
        plugins = load_plugins(p["spec"] for p in meta["plugins"])
        protocol = build_protocol(meta["protocol"], f"{run_dir}/run.json")
        space = load_space(meta["space"]["path"])
        if meta.get("reference"):  # the run's reference (--reference may have replaced the file's)
            space = dataclasses.replace(space, reference=dict(meta["reference"]))
        fields = {
            "space": space, "protocol": protocol, "run_dir": run_dir,
            "trials": meta["trials_requested"], "seed": meta["seed"], "sampler": meta["sampler"],
            "objectives": tuple(Objective(o["metric"], o["direction"]) for o in meta["objectives"]),
            "objectives_from": meta["objectives_from"], "scheduler": meta["scheduler"], "address": meta["address"],
            "gpus_per_trial": meta["gpus_per_trial"], "cpus_per_trial": meta["cpus_per_trial"],
            "max_concurrent": meta["max_concurrent"], "storage": meta["storage"], "data_dir": meta["data_dir"],
            "store": meta.get("store"),  # runs started before the store had none: the default one
            "study": meta.get("study"),
            "max_failures": meta["max_failures"], "dashboard": meta["dashboard"], "command": meta["command"],
            "design": meta["design"], "confirm": meta["confirm"], "seeds": meta["seeds"], "plugins": plugins,
            "trackers": tuple(meta.get("trackers", ())),  # runs started before trackers existed name none
        }
        return cls(**{**fields, **overrides})

    @property
    def confirmation_seeds(self) -> tuple[int, ...]:
        """The training seeds besides the run's: the fresh seeds that judge the selected candidates, ``seed + 1 …
        seed + seeds`` (none without confirmation); for an ablation, ``seed + 1 … seed + seeds − 1``, so that every
        config has ``seeds`` in all. They play no part in selection, which sees only the run's own seed.

        The data splits stay those of the run's seed, so the rows of one training seed form pairs across models.
        """
        extra = self.seeds - 1 if self.ablation else (self.seeds if self.confirm else 0)
        return tuple(self.seed + 1 + r for r in range(extra))

    @property
    def training_seeds(self) -> tuple[int, ...]:
        """Every training seed of the baselines: the run's seed (the design's), then the confirmation seeds."""
        return (self.seed, *self.confirmation_seeds)

    @property
    def macro(self) -> str:
        """The macro network this run builds every model on (the space's choice for the protocol)."""
        return self.space.macro_for(self.protocol.name, self.protocol.macro)

    @property
    def store_url(self) -> str:
        """The store's SQLAlchemy URL: ``store``, or ``ablate.db`` in the results folder (beside the run folder)."""
        from ablate.store import store_url

        return store_url(self.store, self.run_dir.parent)

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
