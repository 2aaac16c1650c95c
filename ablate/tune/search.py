"""Optuna's side of a run: samplers, storage, the searcher Ray Tune drives, and the study's repair after a kill."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from ablate.design import balanced_design
from ablate.errors import UsageError
from ablate.registry import lookup
from ablate.space import SearchSpace
from ablate.tune.settings import RunSettings
from ablate.tune.status import EARLIER_EPOCHS, classify


def startup_trials(trials: int) -> int:
    """How many trials a sampler spends before it models the results (TPE's start-up, NSGA-II's first population)."""
    return min(trials, 10, max(2, trials // 2))


def make_sampler(name: str, space: SearchSpace, seed: int, trials: int) -> optuna.samplers.BaseSampler:
    """An Optuna sampler by name, seeded, with start-up / population sizes fitted to the trial budget.

    Raises:
        UsageError: An unknown sampler name.
    """
    samplers: dict[str, Callable[[], optuna.samplers.BaseSampler]] = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials(trials)),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed, population_size=max(2, startup_trials(trials))),
        "grid": lambda: optuna.samplers.GridSampler(space.grid_search_space(), seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }
    return lookup(samplers, name, "sampler", UsageError)()


def make_storage(url: str | None, run_dir: Path) -> optuna.storages.BaseStorage:
    """A journal file in the run folder by default (safe with parallel writers, unlike SQLite); an RDB URL on a cluster.

    Raises:
        UsageError: The URL cannot be opened.
    """
    from optuna.storages.journal import JournalFileBackend

    if url is None or url.endswith((".journal", ".log")):
        path = Path(url) if url else run_dir / "optuna.journal"
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as err:  # sqlalchemy raises many kinds for a bad URL; all mean the same to the user
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(f"cannot open Optuna storage {url!r}: {message} (use e.g. sqlite:///study.db, "
                         "postgresql://user@host/db, or a .journal file path)") from None


DESIGN_POINTS: dict[str, Callable[[RunSettings], list[dict[str, Any]]]] = {
    "grid": lambda settings: settings.space.grid_points(),
    "balanced": lambda settings: balanced_design(settings.space.axes, settings.trials, settings.seed),
    "search": lambda settings: balanced_design(settings.space.axes, startup_trials(settings.trials), settings.seed),
}


def design_points(settings: RunSettings) -> list[dict[str, Any]]:
    """The configs a run's design fixes before any result is in (axis → value), trained first and to the full budget.

    ``grid``: every config; ``balanced``: ``trials`` configs with every choice (and pair of choices) about equally
    often; ``search``: a balanced core of the sampler's start-up size, after which the sampler takes over.
    """
    return DESIGN_POINTS[settings.design](settings)


PHASE = "phase"  # the config key that tells a design trial (full budget, never stopped early) from a search one


class AblationSearch(OptunaSearch):
    """Ray's OptunaSearch with a design, no repeated blocks, and honest trial states in the study.

    - The design's points are enqueued in the study before anything else, so storage and dashboards hold them;
      their configs carry ``phase: design`` (the scheduler never stops them early), the sampler's ``phase: search``.
    - A block is never trained twice while unseen ones remain.
    - ASHA-stopped trials are told PRUNED and failed ones FAIL: Ray's own searcher reports a stopped trial as
      COMPLETE with its partial accuracy, which would make the study treat a 1-epoch score as a final one.

    Args:
        epochs: The full budget, to tell pruned trials from completed ones.
        points: Every point of the space (axis → value), for replacing repeated proposals.
        design: The design's points, enqueued first.
        **kwargs: Passed on to ``OptunaSearch`` (space, metric, mode, sampler, study_name, storage, seed).
    """

    def __init__(self, epochs: int, points: list[dict[str, Any]], design: list[dict[str, Any]] = (), **kwargs: Any):
        super().__init__(**kwargs)
        self._epochs, self._points = epochs, points
        self._design = {self._key(p) for p in design}
        self._suggested: set[str] = set()
        self._reported: set[tuple[str, int]] = set()  # (trial id, epoch) already in the study
        self._rng = random.Random(kwargs.get("seed"))
        for point in design:
            self._ot_study.enqueue_trial(point)

    @staticmethod
    def _key(config: dict[str, Any]) -> str:
        return json.dumps(config, sort_keys=True, default=str)

    def suggest(self, trial_id: str) -> dict | None:
        """Never train a block twice while unseen ones remain: a repeated proposal is told to the study as FAIL
        (user attr ``duplicate``) and replaced by a random unseen block, enqueued so Optuna records it as usual.
        """
        config = super().suggest(trial_id)
        if not isinstance(config, dict):
            return config
        unseen = [p for p in self._points if self._key(p) not in self._suggested]
        if self._key(config) in self._suggested and unseen:
            duplicate = self._ot_trials.pop(trial_id)
            duplicate.set_user_attr("duplicate", True)
            self._tell(duplicate, TrialState.FAIL)
            self._ot_study.enqueue_trial(self._rng.choice(unseen))
            config = super().suggest(trial_id)
        self._suggested.add(self._key(config))
        return {**config, PHASE: "design" if self._key(config) in self._design else "search"}

    def restore(self, checkpoint_path: str) -> None:
        """Restore the searcher Ray snapshotted, then take back the trials the snapshot missed.

        Ray snapshots the searcher every few seconds, so after a driver kill the study may hold RUNNING trials the
        restored searcher never heard of: their Ray trials are gone with the snapshot. Each such trial is told FAIL
        (user attr ``interrupted``) and its block enqueued again, so the next trial trains it, resuming from the
        checkpoint the lost trial left in the block's state folder rather than starting over.
        """
        super().restore(checkpoint_path)
        known = {trial.number for trial in self._ot_trials.values()}
        names = set(self._points[0]) if self._points else set()
        for lost in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if lost.number in known:
                continue
            optuna.Trial(self._ot_study, lost._trial_id).set_user_attr("interrupted", True)
            self._ot_study.tell(lost.number, state=TrialState.FAIL)
            if set(lost.params) >= names:
                self._ot_study.enqueue_trial(lost.params)
                self._suggested.discard(self._key(lost.params))

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Every epoch's val top-1 goes to the study as an intermediate value (step = epoch), so optuna-dashboard
        draws each trial's learning curve; a multi-objective study, which Optuna gives no intermediate values,
        keeps them as user attrs ``val_top1_epoch_<k>``."""
        trial = self._ot_trials.get(trial_id)
        epoch, value = result.get("epoch"), result.get("val_top1")
        if trial is None or trial_id in self._completed_trials or not isinstance(epoch, int) or epoch < 1 \
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
        status = classify("ERROR" if error else "TERMINATED", result or {}, self._epochs)
        if result:
            self.on_trial_result(trial_id, result)  # Ray skips the hook for a trial's last result
        if status == "completed" or trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        if status == "pruned":
            self._ot_trials[trial_id].set_user_attr(
                "pruned_by", f"ASHA after epoch {(result or {}).get('epoch', 0)} of {self._epochs}")
        self._tell(self._ot_trials[trial_id], TrialState.PRUNED if status == "pruned" else TrialState.FAIL)
        self._completed_trials.add(trial_id)

    def _tell(self, trial: optuna.Trial, state: TrialState) -> None:
        """Tell Optuna, tolerating the two harmless refusals (Ray's own searcher swallows every error here):
        GridSampler's ``study.stop()`` once the grid is used up (the state is stored before it, in a ``finally``),
        and a trial the storage already holds as finished (the searcher's snapshot lags it after a resume)."""
        try:
            self._ot_study.tell(trial, None, state=state)
        except RuntimeError as err:
            if "Study.stop" not in str(err):
                raise
        except ValueError as err:
            if "Cannot tell a" not in str(err):
                raise


def make_searcher(settings: RunSettings, study_name: str) -> AblationSearch:
    """The searcher of a run: its space, objectives, sampler and study storage."""
    metrics = [o.column for o in settings.objectives]
    modes = ["max" if o.direction == "maximize" else "min" for o in settings.objectives]
    return AblationSearch(
        settings.protocol.epochs, settings.space.grid_points(), design_points(settings), space=settings.space.define_by_run,
        metric=metrics if settings.multi_objective else metrics[0], mode=modes if settings.multi_objective else modes[0],
        sampler=make_sampler(settings.sampler, settings.space, settings.seed, settings.trials),
        study_name=study_name, storage=make_storage(settings.storage, settings.run_dir), seed=settings.seed,
    )


def reconcile_study(settings: RunSettings, study_name: str, rows: list[dict[str, Any]]) -> int:
    """Finish the trials a killed driver left RUNNING in the Optuna study.

    Ray snapshots its searcher every few seconds, so after a driver kill the restored searcher may not know a trial
    it had asked Optuna for. Such a trial takes the outcome of the table row with its block, unless another study
    trial already holds that block's outcome (then it is FAIL with ``interrupted``), or no row has it (FAIL too).

    Args:
        settings: The run's settings (space, objectives, storage).
        study_name: The study, named after the run folder.
        rows: The run's table rows; candidates are matched by their ``config``.

    Returns:
        How many RUNNING trials were finished.
    """
    study = optuna.load_study(study_name=study_name, storage=make_storage(settings.storage, settings.run_dir))
    names = [a.name for a in settings.space.axes]

    def config_of(trial: optuna.trial.FrozenTrial) -> str | None:
        if not set(trial.params) >= set(names):
            return None
        return str(settings.space.config({n: trial.params[n] for n in names}))

    finished = {config_of(t) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                                               TrialState.PRUNED, TrialState.FAIL))
                if not t.user_attrs.get("duplicate")}
    by_config = {row["config"]: row for row in rows if row.get("kind") == "candidate" and "config" in row}
    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in orphans:
        config = config_of(trial)
        row = by_config.get(config) if config not in finished else None
        if row is not None and row["status"] == "completed":
            values = [row[o.column] for o in settings.objectives]
            study.tell(trial.number, values if settings.multi_objective else values[0])
        elif row is not None and row["status"] == "pruned":
            study.tell(trial.number, state=TrialState.PRUNED)
        else:
            optuna.Trial(study, trial._trial_id).set_user_attr("interrupted", True)
            study.tell(trial.number, state=TrialState.FAIL)
        finished.add(config)
    return len(orphans)
