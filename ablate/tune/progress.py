"""The run as it goes: a Tune callback that files each trial Tune ends in the run's record and shows progress —
one line redrawn in place on a terminal (tqdm), or a plain line at most every 30 s when output goes to a file — and
the ETA of every phase (:class:`Eta`: the plan's per-model seconds here, scaled by what this session measured)."""

from __future__ import annotations

import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ray import tune
from tqdm import tqdm

from ablate.core.errors import AblateError, traceback_summary
from ablate.core.files import find_disk_full
from ablate.core.formatting import compact_duration
from ablate.core.schema import FINAL_STATUSES, STATUSES, Status
from ablate.planning.timing import FIXED_SECONDS_PER_MODEL, Schedule
from ablate.tune.collect import candidate_outcome
from ablate.tune.record import RunRecord
from ablate.tune.settings import RunSettings
from ablate.tune.status import classify

PLAIN_EVERY_S = 30.0  # plain lines when stdout is not a terminal
POLL_EVERY_S = 2.0  # how often finished baselines / confirmations are looked for


@dataclass
class Eta:
    """Time left of a phase: the makespan of its trainings still to end on the run's workers, each taking the
    seconds the run's plan projected for its config here (:mod:`ablate.planning`: earlier runs' times, else steps
    timed before the run), scaled by how long this session's ended trainings took against their projections.

    Plain values only: Ray pickles it inside the progress callback.

    Args:
        seconds: Config → projected seconds of one training (the plan's ``seconds``); empty: no ETA.
        workers: Trainings at once.
    """

    seconds: dict[str, float]
    workers: int
    projected: float = 0.0  # of the trainings that ended this session
    measured: float = 0.0
    _ended: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, plan: Mapping[str, Any] | None, workers: int) -> "Eta":
        """The ETA of a run from its plan (run.json's ``plan``) and its workers."""
        return cls({k: float(v) for k, v in ((plan or {}).get("seconds") or {}).items()}, max(1, int(workers)))

    def expected(self, config: str | None) -> float:
        """Projected seconds of one training of ``config``; a config the plan did not time (or None: a candidate
        the sampler has yet to pick) takes the median of the plan's configs."""
        if config in self.seconds:
            return self.seconds[config]
        return statistics.median(self.seconds.values()) if self.seconds else math.nan

    def ended(self, key: str, config: str, row: Mapping[str, Any]) -> None:
        """A training ended (its row's ``train_seconds`` measured it): it recalibrates the projections."""
        took = row.get("train_seconds")
        if key in self._ended or not isinstance(took, (int, float)) or not math.isfinite(took) or took <= 0:
            return
        self._ended.add(key)
        self.projected += self.expected(config)
        self.measured += float(took)

    @property
    def scale(self) -> float:
        """Measured over projected seconds of the trainings ended this session (1 before any has)."""
        return self.measured / self.projected if self.projected > 0 else 1.0

    def left(self, configs: Iterable[str | None], models_timed: int = 0) -> float:
        """Seconds until ``configs`` (one entry per training still to end) have trained, plus the side-by-side
        timing of ``models_timed`` models that follows; NaN when the plan has no times."""
        schedule = Schedule(self.workers)
        for config in configs:
            schedule.add(self.expected(config))
        return schedule.makespan * self.scale + FIXED_SECONDS_PER_MODEL * models_timed

    def text(self, configs: Iterable[str | None], later: Iterable[str | None] = (), models_timed: int = 0) -> str:
        """``, ETA 3m05s`` of a phase's ``configs`` for its progress line — with ``(run 9m10s)`` when ``later``
        trainings or a timing of ``models_timed`` models follow it — or nothing when the plan has no times."""
        phase, later = self.left(configs), list(later)
        if not math.isfinite(phase):
            return ""
        run = phase + self.left(later, models_timed) if later or models_timed else phase
        return f", ETA {compact_duration(phase)}" + (f" (run {compact_duration(run)})" if run > phase else "")


class RunProgress(tune.Callback):
    """Files every trial Tune ends in the run's record and shows trials done / total, pruned, failed, the best so
    far (restored trials included), baselines, elapsed time and ETA.

    Ray pickles callbacks into its experiment state and restores that copy on ``--resume``, so this holds only
    plain values and the :class:`RunRecord`, which lives in the run folder (the baselines' workers file theirs
    there too); the tqdm bar is not pickled, and the clock restarts with each session.

    Args:
        settings: The run's settings (trial outcomes are built from them).
        job_ids: The trial ids of the baselines running beside Tune, counted as they are filed; a mapping gives
            each one's config, which the ETA counts in.
        trials: The Tune trials the run trains (default: ``settings.trials``; fewer when the design had twins).
        eta: The run's :class:`Eta` (default: none shown).
    """

    def __init__(self, settings: RunSettings, job_ids: Iterable[str] | Mapping[str, str], trials: int | None = None,
                 eta: Eta | None = None):
        self.settings, self.trials, self.epochs = settings, trials or settings.trials, settings.protocol.epochs
        self.record, self.job_ids = RunRecord(settings.run_dir), list(job_ids)
        self.job_configs = dict(job_ids) if isinstance(job_ids, Mapping) else {}
        self.jobs_open = list(self.job_configs)  # not filed yet
        self.eta = eta or Eta({}, 1)
        self.seen: dict[str, dict[str, Any]] = {}
        self.ended: dict[str, str] = {}  # Tune calls the hooks below before it updates trial.status
        self.uncounted: set[str] = set()  # configs whose uncounted ops were already said
        self.jobs_done = 0
        self._start_session()

    def _start_session(self) -> None:
        self.started, self.last_print, self.last_poll, self.printed_done = time.time(), 0.0, 0.0, -1
        self.bar: tqdm | None = None
        self.best = self.record.best()  # an interrupted session's candidates count
        self.stopping: AblateError | None = None  # raised at the step's end (see _ended)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "bar": None, "stopping": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"job_configs": {}, "jobs_open": [], "eta": Eta({}, 1), **state})  # older pickles too
        self._start_session()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.seen[trial.trial_id] = result
        self.show(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended(trials, trial, "TERMINATED", None)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._stop_if_disk_full(trial)  # before Tune retries it: the retry would only fill the disk again

    def on_trial_error(self, iteration, trials, trial, **info):
        self._stop_if_disk_full(trial)  # not the model's failure: nothing is filed, --resume trains it on
        self._ended(trials, trial, "ERROR", _error_of(trial))

    def _stop_if_disk_full(self, trial) -> None:
        """Stop the run in one line (:class:`ablate.core.files.DiskFull`) when a trial failed for want of disk space."""
        full = find_disk_full(RuntimeError(_error_text(trial)), self.settings.run_dir)
        if full is not None:
            raise full

    def on_step_end(self, iteration, trials, **info):
        if self.stopping is not None:
            raise self.stopping
        now = time.monotonic()
        if now - self.last_poll >= POLL_EVERY_S:  # baselines file themselves: rewrite the tables when one has
            self.last_poll = now
            filed = self.record.outcomes()
            for job_id in [j for j in self.jobs_open if j in filed]:
                self.eta.ended(job_id, self.job_configs[job_id], filed[job_id]["row"])
            self.jobs_open = [j for j in self.jobs_open if j not in filed]
            done = sum(job_id in filed for job_id in self.job_ids)
            if done != self.jobs_done:
                self.jobs_done = done
                self.record.write(self.counts(trials), (done, len(self.job_ids)), now=False)
        self.record.write_due(lambda: (self.counts(trials), (self.jobs_done, len(self.job_ids))))
        self.show(trials)

    def _ended(self, trials, trial, status: str, error: str | None) -> None:
        self.ended[trial.trial_id] = status
        if trial.config:
            metrics = self.seen.get(trial.trial_id) or trial.last_result or {}
            outcome = candidate_outcome(self.settings, trial.config, metrics, trial.trial_id, error)
            try:
                self.record.file(outcome)
                self.eta.ended(trial.trial_id, outcome["row"].get("config"), outcome["row"])
                self._say_uncounted(outcome["row"])
                self.best = self.record.write(self.counts(trials), (self.jobs_done, len(self.job_ids)), now=False)
            except AblateError as err:  # raised in Tune's hook, it would come with Tune's traceback: stop at the
                self.stopping = self.stopping or err  # step's end instead, in its one line (a full disk, a store)
        self.show(trials)

    def _say_uncounted(self, row: dict[str, Any]) -> None:
        """The first row of a config with ops fvcore could not count says so in one warning line."""
        uncounted = row.get("uncounted_ops")
        if isinstance(uncounted, str) and uncounted and row["config"] not in self.uncounted:
            self.uncounted.add(row["config"])
            print(f"[ablate] warning: {row['name']}: fvcore cannot count {uncounted}; its MACs and element-wise "
                  "ops leave that work out (a lower bound, named in the table's uncounted_ops and the report)",
                  flush=True)

    def counts(self, trials) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for trial in trials:
            result = self.seen.get(trial.trial_id) or trial.last_result or {}
            counts[classify(self.ended.get(trial.trial_id, trial.status), result, self.epochs)] += 1
        return counts

    def text(self, counts: dict[str, int]) -> str:
        best_text = f"best val top-1 {self.best[0]:.1f}% ({self.best[1]})" if self.best else "best —"
        jobs = f" | baselines {self.jobs_done}/{len(self.job_ids)}" if self.job_ids else ""
        finals = ", ".join(f"{counts[status]} {status}" for status in FINAL_STATUSES)
        return f"{finals}; {counts[Status.RUNNING]} running | {best_text}{jobs}"

    def show(self, trials) -> None:
        """Redraw the bar (terminal) or print a plain line when due (file, pipe) and when the last trial ends."""
        counts = self.counts(trials)
        done = sum(counts[s] for s in FINAL_STATUSES)
        eta = self.eta_text(done) if done < self.trials else ""
        if sys.stdout.isatty():
            if self.bar is None:
                self.bar = tqdm(total=self.trials, desc="[ablate] trials", unit="trial", dynamic_ncols=True,
                                file=sys.stdout, bar_format="{desc} {n}/{total} |{bar:20}| {postfix} [{elapsed}]")
            self.bar.n = done
            self.bar.set_postfix_str(self.text(counts) + eta, refresh=True)
            if done == self.trials:
                self.close()
            return
        now = time.monotonic()
        if done < self.trials and now - self.last_print < PLAIN_EVERY_S or done == self.trials == self.printed_done:
            return
        self.printed_done = done
        self.last_print = now
        elapsed = time.time() - self.started
        print(f"[ablate] trials {done}/{self.trials} done: {self.text(counts)} | elapsed {compact_duration(elapsed)}"
              f"{eta}", flush=True)

    def eta_text(self, done: int) -> str:
        """The ETA of the trials and the baselines beside them, then of the run: the confirmations that follow
        (a candidate's median time each) and the side-by-side timing of every model."""
        phase = [None] * (self.trials - done) + [self.job_configs[j] for j in self.jobs_open]
        confirmations = [None] * (getattr(self.settings, "confirm", 0) *
                                  len(getattr(self.settings, "confirmation_seeds", ())))
        models = self.trials + len(set(self.job_configs.values()))
        return self.eta.text(phase, confirmations, models)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _error_text(trial) -> str:
    """A failed trial's errors as Ray stored them (a traceback per failure in the trial's error file)."""
    try:
        return Path(trial.error_file).read_text() if getattr(trial, "error_file", None) else ""
    except OSError:
        return ""


def _error_of(trial) -> str:
    """The first line of a failed trial's error as Ray stored it (a traceback in the trial's error file)."""
    return traceback_summary(_error_text(trial), "the trial raised an error")
