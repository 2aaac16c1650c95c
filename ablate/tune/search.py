"""Optuna's side of a run: samplers, storage, the searcher Ray Tune drives, and the study's repair after a kill."""

from __future__ import annotations

import json
import pickle
import random
import threading
from typing import Any, Callable

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from ablate.core.errors import UsageError
from ablate.core.files import write_atomic
from ablate.core.registry import lookup
from ablate.core.schema import ABLATION, DESIGN, SEARCH, Kind, Status
from ablate.space import SearchSpace
from ablate.space.design import design_points, startup_trials
from ablate.space.networks import Networks, space_networks
from ablate.tune.settings import RunSettings
from ablate.tune.status import EARLIER_EPOCHS, classify
from ablate.tune.storage import make_storage


class _NSGAIISampler(optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II, picklable again: Optuna 5.1's holds a ``threading.Lock`` (guarding an in-process cache of
    its generations), which Ray Tune cannot pickle into its experiment state (``tuner.pkl``); a copy gets a lock of
    its own. The study keys stay NSGA-II's own, so a study started by either class resumes under the other."""

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_thread_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()


# Optuna names the study keys of a GA sampler after its class (``__init_subclass__``): keep NSGA-II's
_NSGAIISampler._GENERATION_KEY = getattr(optuna.samplers.NSGAIISampler, "_GENERATION_KEY", None)
_NSGAIISampler._PARENT_CACHE_KEY_PREFIX = getattr(optuna.samplers.NSGAIISampler, "_PARENT_CACHE_KEY_PREFIX", None)


def make_sampler(name: str, space: SearchSpace, seed: int, trials: int) -> optuna.samplers.BaseSampler:
    """An Optuna sampler by name, seeded, with start-up / population sizes fitted to the trial budget.

    Raises:
        UsageError: An unknown sampler name.
    """
    samplers: dict[str, Callable[[], optuna.samplers.BaseSampler]] = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(trials)),
        "nsga2": lambda: _NSGAIISampler(seed=seed, population_size=max(2, startup_trials(trials))),
        "grid": lambda: optuna.samplers.GridSampler(space.grid_search_space(), seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    return lookup(samplers, name, "sampler", UsageError)()


PHASE = "phase"  # the config key that tells a design trial (full budget, never stopped early) from a search one
# a trial's result keys the study keeps as user attributes: its costs, its test top-1 once trained, its seed, its phase
TRIAL_USER_ATTRS = ("block", "phase", "seed", "params", "macs", "elementwise_ops", "activations",
                    "trial_latency_ms", "val_top1", "test_top1", "train_seconds", "symmetric", "node")


class AblationSearch(Searcher):
    """Ray Tune's searcher for a run: one Optuna study driven through its public ask/tell interface.

    Ask/tell rather than Ray's ``OptunaSearch`` because a run needs three things only the study's own API gives
    without reaching into private attributes: the design's points enqueued in the study before anything else (so
    storage and dashboards hold them; ``points_to_evaluate`` would keep them in the searcher only), a repeated block
    told FAIL and replaced, and honest trial states (Ray's searcher tells an ASHA-stopped trial COMPLETE with its
    partial accuracy, which makes the study treat a 1-epoch score as a final one).

    - Design configs carry ``phase: design`` (the scheduler never stops them early), the sampler's ``phase: search``.
    - A block is never trained twice while unseen ones remain.
    - ASHA-stopped trials are told PRUNED (user attr ``pruned_by``) and failed ones FAIL.
    - On resume, the study is repaired once, by :func:`repair_study`.

    Args:
        epochs: The full budget, to tell pruned trials from completed ones.
        points: Every point of the space (axis → value), for replacing repeated proposals.
        design: The design's points, enqueued first.
        space: The space: suggests an Optuna trial's parameters and names a point's block.
        metric: The result key (or keys, multi-objective) told to the study.
        mode: ``max`` / ``min`` (or one per metric).
        sampler: The study's sampler.
        study_name: The study's name in its storage.
        storage: Where the study lives (in memory if None).
        seed: Seeds the choice of the unseen block that replaces a repeat.
        networks: Which network each point builds (:func:`ablate.space.networks.space_networks`): a proposal of a
            network already proposed under another name, or of one a baseline trains, is a repeat. None: every
            point is its own network.
        design_phase: The phase of the design's trials (``design``; ``ablation`` in an ablation design).
    """

    def __init__(self, epochs: int, points: list[dict[str, Any]], design: list[dict[str, Any]] = (), *,
                 space: SearchSpace, metric: str | list[str], mode: str | list[str],
                 sampler: optuna.samplers.BaseSampler | None = None, study_name: str | None = None,
                 storage: optuna.storages.BaseStorage | None = None, seed: int | None = None,
                 networks: Networks | None = None, design_phase: str = DESIGN):
        super().__init__(metric=metric, mode=mode)
        self._design_phase = design_phase
        self._epochs, self._space = epochs, space
        self._networks = networks or Networks({}, {})
        self._points = self._networks.distinct(points)
        self.storage = storage or optuna.storages.InMemoryStorage()
        modes = mode if isinstance(mode, list) else [mode]
        self.study = optuna.create_study(
            storage=self.storage, sampler=sampler, pruner=optuna.pruners.NopPruner(), study_name=study_name,
            load_if_exists=True, directions=["maximize" if m == "max" else "minimize" for m in modes])
        self._design = {self._key(p) for p in design}
        self._asked: dict[str, optuna.Trial] = {}  # Ray trial id → the study trial it trains
        self._told: set[str] = set()  # Ray trial ids whose outcome the study holds
        self._suggested: set[str] = {k for k in self._networks.stands_for.values() if k.startswith("baseline:")}
        self._reported: set[tuple[str, int]] = set()  # (trial id, epoch) already in the study
        self._rng = random.Random(seed)
        self._started = False  # set by the first suggest or by restore: see _check_not_a_lost_restore
        for point in design:
            self.study.enqueue_trial(point)

    def _key(self, config: dict[str, Any]) -> str:
        """The key of the network a point builds (twins share it)."""
        return self._networks.key({a.name: config[a.name] for a in self._space.axes})

    @property
    def design_size(self) -> int:
        return len(self._design)

    @property
    def distinct_points(self) -> int:
        return len(self._points)

    def _ask(self, trial_id: str) -> dict[str, Any]:
        trial = self.study.ask()
        self._space.suggest_values(trial)
        self._asked[trial_id] = trial
        return dict(trial.params)

    def suggest(self, trial_id: str) -> dict | None:
        """The next block to train. A repeated proposal (a network already proposed, under any name, or one a
        baseline trains) is told to the study as FAIL (user attr ``duplicate``) and replaced by a random unseen
        block, enqueued so Optuna records it as usual."""
        if not self._started:
            self._check_not_a_lost_restore()
        config = self._ask(trial_id)
        unseen = [p for p in self._points if self._key(p) not in self._suggested]
        if self._key(config) in self._suggested and unseen:
            duplicate = self._asked.pop(trial_id)
            duplicate.set_user_attr("duplicate", True)
            self._tell(duplicate.number, TrialState.FAIL)
            self.study.enqueue_trial(self._rng.choice(unseen))
            config = self._ask(trial_id)
        self._suggested.add(self._key(config))
        return {**config, PHASE: self._design_phase if self._key(config) in self._design else SEARCH}

    def _check_not_a_lost_restore(self) -> None:
        """Refuse to start a study over: a first suggestion from a searcher that was never restored, while its study
        already holds trials, means Ray could not restore the run's state and started the experiment afresh (it
        logs "Failed to restore the run state" and goes on), which would train the study's blocks again beside
        their old outcomes.

        Raises:
            UsageError: The study holds trials from an earlier session that this searcher knows nothing of.
        """
        self._started = True
        held = [t for t in self.study.get_trials(deepcopy=False) if t.state != TrialState.WAITING]
        if held:
            raise UsageError(f"Ray could not restore this run's Tune state (see the lines above), and would start "
                             f"its study {self.study.study_name!r} over beside the {len(held)} trials it holds: "
                             "restore the run folder's tune/ and optuna.journal from a backup, or start a new run")

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Every epoch's val top-1 goes to the study as an intermediate value (step = epoch), so optuna-dashboard
        draws each trial's learning curve; a multi-objective study, which Optuna gives no intermediate values,
        keeps them as user attrs ``val_top1_epoch_<k>``."""
        trial = self._asked.get(trial_id)
        epoch, value = result.get("epoch"), result.get("val_top1")
        if trial is None or trial_id in self._told or not isinstance(epoch, int) or epoch < 1 \
                or not isinstance(value, (int, float)) or value != value:
            return
        # a trial resumed from a block's checkpoint (after a kill) is a new study trial: it gets the epochs the
        # interrupted one trained too, so the study's learning curve of every finished trial is whole
        earlier = [(int(e), v) for e, v in result.get(EARLIER_EPOCHS) or () if int(e) < epoch]
        for step, val in [*earlier, (epoch, value)]:
            if (trial_id, step) in self._reported:
                continue
            self._reported.add((trial_id, step))
            try:
                if isinstance(self.metric, list):
                    trial.set_user_attr(f"val_top1_epoch_{step}", float(val))
                else:
                    trial.report(float(val), step)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # a trial restored after a kill replays its last epoch; the study already holds its outcome

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Tell the study the trial's outcome: its objective values if it completed, PRUNED or FAIL if not."""
        trial = self._asked.get(trial_id)
        if trial is None or trial_id in self._told:
            return
        result = result or {}
        status = classify("ERROR" if error else "TERMINATED", result, self._epochs)
        if result:
            self.on_trial_result(trial_id, result)  # Ray skips the hook for a trial's last result
        finished = self.study.get_trials(deepcopy=False)[trial.number].state.is_finished()  # told on resume already
        for key in () if finished else TRIAL_USER_ATTRS:  # what optuna-dashboard shows beside a trial's parameters
            value = result.get(key)
            if isinstance(value, (bool, int, float, str)) and value == value:
                trial.set_user_attr(key, value)
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        values = [result.get(m) for m in metrics]
        if status == Status.COMPLETED and all(isinstance(v, (int, float)) and v == v for v in values):
            self._tell(trial.number, TrialState.COMPLETE, values)
        elif status == Status.PRUNED:
            trial.set_user_attr("pruned_by", f"ASHA after epoch {result.get('epoch', 0)} of {self._epochs}")
            self._tell(trial.number, TrialState.PRUNED)
        else:
            self._tell(trial.number, TrialState.FAIL)
        self._told.add(trial_id)

    def _tell(self, number: int, state: TrialState, values: list[float] | None = None) -> None:
        """Tell Optuna, unless the storage already holds the trial as finished (the snapshot a resumed searcher
        started from lags the study). ``GridSampler`` stops the study once its grid is used up, which outside
        ``Study.optimize`` is a RuntimeError raised after the state is stored: harmless here."""
        if self.study.get_trials(deepcopy=False)[number].state.is_finished():
            return
        try:
            self.study.tell(number, values, state=state)
        except RuntimeError:
            if not self.study.get_trials(deepcopy=False)[number].state.is_finished():
                raise

    def save(self, checkpoint_path: str) -> None:
        """Ray's snapshot of the searcher: everything but the study and its storage, which hold their own state."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("study", "storage", "_asked")}
        state["_asked"] = {trial_id: trial.number for trial_id, trial in self._asked.items()}
        write_atomic(checkpoint_path, lambda tmp: tmp.write_bytes(pickle.dumps(state)))  # a full disk: one line

    def restore(self, checkpoint_path: str) -> None:
        """Take back Ray's snapshot, then repair the study once (:func:`repair_study`): the blocks of the trials
        the snapshot never heard of are enqueued, to be trained again first."""
        with open(checkpoint_path, "rb") as file:
            state = pickle.load(file)
        asked = state.pop("_asked")
        self.__dict__.update(state)
        self._started = True
        self._asked = {trial_id: optuna.Trial(self.study, self._trial_id(number)) for trial_id, number in asked.items()}
        for params in repair_study(self.study, self.storage, self._space, known=set(asked.values())):
            self.study.enqueue_trial(params)
            self._suggested.discard(self._key(params))

    def _trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(
            self.storage.get_study_id_from_name(self.study.study_name), number)


def run_design(settings: RunSettings) -> tuple[Networks, list[dict[str, Any]]]:
    """The networks of the run's space and its design's points without twins: what Tune trains first."""
    networks = space_networks(settings.space, settings.macro)
    return networks, networks.distinct(design_points(settings.space, settings.design, settings.trials, settings.seed))


def make_searcher(settings: RunSettings, study_name: str) -> AblationSearch:
    """The searcher of a run: its space, objectives, sampler and study storage; the design without twins."""
    metrics = [o.column for o in settings.objectives]
    modes = ["max" if o.direction == "maximize" else "min" for o in settings.objectives]
    networks, design = run_design(settings)
    return AblationSearch(
        settings.protocol.epochs, settings.space.grid_points(), design, space=settings.space, networks=networks,
        design_phase=ABLATION if settings.ablation else DESIGN,
        metric=metrics if settings.multi_objective else metrics[0],
        mode=modes if settings.multi_objective else modes[0],
        sampler=make_sampler(settings.sampler, settings.space, settings.seed, settings.trials),
        study_name=study_name, storage=make_storage(settings.storage, settings.run_dir), seed=settings.seed,
    )


def reconcile_study(settings: RunSettings, rows: list[dict[str, Any]]) -> int:
    """Tell the study the outcome of every search trial the run's record holds while the study still has it
    RUNNING (its tell was lost: a torn journal tail cut off, a driver killed between filing and telling), so that
    the study and ``records/`` agree; the trial is matched by its block, one study trial per block.

    Args:
        settings: The run's settings (its study's storage and name, its space and objectives).
        rows: The record's rows.

    Returns:
        How many study trials were told.
    """
    filed = {row["config"]: row for row in rows
             if row.get("kind") == Kind.CANDIDATE and row.get("phase") in (DESIGN, SEARCH)}
    study = optuna.load_study(study_name=settings.run_dir.name,
                              storage=make_storage(settings.storage, settings.run_dir))
    told = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not set(trial.params) >= {a.name for a in settings.space.axes}:
            continue
        row = filed.get(str(settings.space.block_of(trial.params)))
        if row is None:
            continue
        values = [row.get(o.column) for o in settings.objectives]
        if row["status"] == Status.COMPLETED and all(isinstance(v, (int, float)) and v == v for v in values):
            study.tell(trial.number, values)
        else:
            study.tell(trial.number, state=TrialState.PRUNED if row["status"] == Status.PRUNED else TrialState.FAIL)
        told += 1
    if told:
        print(f"[ablate] the study had {told} trial(s) still running whose outcome the run's record holds: told",
              flush=True)
    return told


def repair_study(study: optuna.Study, storage: optuna.storages.BaseStorage, space: SearchSpace,
                 known: set[int] = frozenset()) -> list[dict[str, Any]]:
    """The one repair of a study a killed driver left, made as the run resumes: each RUNNING trial the resumed
    searcher does not drive is told FAIL (user attr ``interrupted``), and its block is trained again unless another
    study trial already holds that block's outcome.

    Ray snapshots its searcher every few seconds, so after a driver kill the study may hold trials the restored
    searcher never heard of: their Ray trials are gone with the snapshot, and Ray fills their places with new ones.
    Training the block again costs little: its trial resumes from the checkpoint the lost one left in the block's
    state folder (a finished block only reports its result), and the study then holds one outcome per block.

    Args:
        study: The run's study.
        storage: Its storage (user attrs of a trial are set through it).
        space: The run's space, to tell which trials name a whole block.
        known: Numbers of the study trials the resumed searcher still drives (left as they are).

    Returns:
        The params (axis → value) of the blocks to train again.
    """
    names = [a.name for a in space.axes]
    study_id = storage.get_study_id_from_name(study.study_name)

    def block_of(trial: optuna.trial.FrozenTrial) -> str | None:
        return json.dumps({n: trial.params[n] for n in names}, default=str) if set(trial.params) >= set(names) else None

    finished = {block_of(t) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                              TrialState.FAIL))
                if not t.user_attrs.get("duplicate") and not t.user_attrs.get("interrupted")}
    again = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.number in known:
            continue
        storage.set_trial_user_attr(storage.get_trial_id_from_study_id_trial_number(study_id, trial.number),
                                    "interrupted", True)
        study.tell(trial.number, state=TrialState.FAIL)
        block = block_of(trial)
        if block is not None and block not in finished:
            again.append({n: trial.params[n] for n in names})
            finished.add(block)
    return again
