"""The run as it goes: a Tune callback that files each finished trial into the live tables and shows progress —
one line redrawn in place on a terminal (tqdm), or a plain line at most every 30 s when output goes to a file."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from ray import tune
from tqdm import tqdm

from ablate.formatting import compact_duration
from ablate.tune.collect import candidate_row
from ablate.tune.live import LIVE_RUNS, LiveRun
from ablate.tune.settings import RunSettings
from ablate.errors import traceback_summary
from ablate.schema import STATUSES
from ablate.tune.status import classify

PLAIN_EVERY_S = 30.0  # plain lines when stdout is not a terminal
POLL_EVERY_S = 2.0  # how often finished baselines / confirmations are looked for


class RunProgress(tune.Callback):
    """Files every ended trial into the run's live tables and shows trials done / total, pruned, failed, the best
    so far (restored trials included), baselines, elapsed time and ETA.

    Ray pickles callbacks into its experiment state and restores them on ``--resume``, so this holds only plain
    values and finds the driver's live record (tables, jobs) through ``LIVE_RUNS``; the tqdm bar is not pickled.
    """

    def __init__(self, settings: RunSettings):
        self.run_dir, self.trials, self.epochs = str(settings.run_dir), settings.trials, settings.protocol.epochs
        self.seen: dict[str, dict[str, Any]] = {}
        self.ended: dict[str, str] = {}  # Tune calls the hooks below before it updates trial.status
        self.last_print = self.last_poll = 0.0
        self.printed_done = -1
        self.bar: tqdm | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "bar": None}

    @property
    def live(self) -> LiveRun | None:
        return LIVE_RUNS.get(self.run_dir)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.seen[trial.trial_id] = result
        self.show(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended(trials, trial, "TERMINATED", None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended(trials, trial, "ERROR", _error_of(trial))

    def on_step_end(self, iteration, trials, **info):
        now = time.monotonic()
        if self.live is not None and now - self.last_poll >= POLL_EVERY_S:
            self.last_poll = now
            if self.live.poll_jobs():
                self.live.write(self.counts(trials))
        self.show(trials)

    def _ended(self, trials, trial, status: str, error: str | None) -> None:
        self.ended[trial.trial_id] = status
        live = self.live
        if live is not None and trial.config:
            metrics = self.seen.get(trial.trial_id) or trial.last_result or {}
            live.add(*candidate_row(live.settings, trial.config, metrics, trial.trial_id, error))
            live.write(self.counts(trials))
        self.show(trials)

    def counts(self, trials) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for trial in trials:
            result = self.seen.get(trial.trial_id) or trial.last_result or {}
            counts[classify(self.ended.get(trial.trial_id, trial.status), result, self.epochs)] += 1
        return counts

    def text(self, counts: dict[str, int]) -> str:
        live = self.live
        best = live.best() if live is not None else None
        best_text = f"best val top-1 {best[0]:.1f}% ({best[1]})" if best else "best —"
        jobs = f" | baselines {live.jobs.done_count()}/{len(live.jobs.jobs)}" if live is not None and live.jobs.jobs else ""
        return (f"{counts['completed']} completed, {counts['pruned']} pruned, {counts['failed']} failed; "
                f"{counts['running']} running | {best_text}{jobs}")

    def show(self, trials) -> None:
        """Redraw the bar (terminal) or print a plain line when due (file, pipe) and when the last trial ends."""
        counts = self.counts(trials)
        done = counts["completed"] + counts["pruned"] + counts["failed"]
        if sys.stdout.isatty():
            if self.bar is None:
                self.bar = tqdm(total=self.trials, desc="[ablate] trials", unit="trial", dynamic_ncols=True,
                                file=sys.stdout, bar_format="{desc} {n}/{total} |{bar:20}| {postfix} "
                                                            "[{elapsed}, ETA {remaining}]")
            self.bar.n = done
            self.bar.set_postfix_str(self.text(counts), refresh=True)
            if done == self.trials:
                self.close()
            return
        now = time.monotonic()
        if done < self.trials and now - self.last_print < PLAIN_EVERY_S or done == self.trials == self.printed_done:
            return
        self.printed_done = done
        self.last_print = now
        live = self.live
        elapsed = time.monotonic() - live.started if live is not None else 0.0
        eta = f", ETA {compact_duration(elapsed / done * (self.trials - done))}" if 0 < done < self.trials else ""
        print(f"[ablate] trials {done}/{self.trials} done: {self.text(counts)} | elapsed {compact_duration(elapsed)}{eta}",
              flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _error_of(trial) -> str:
    """The first line of a failed trial's error as Ray stored it (a traceback in the trial's error file)."""
    try:
        text = Path(trial.error_file).read_text() if getattr(trial, "error_file", None) else ""
    except OSError:
        text = ""
    return traceback_summary(text, "the trial raised an error")
