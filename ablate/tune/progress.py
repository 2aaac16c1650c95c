"""The run's progress on the terminal: trials done / running / pruned / failed, the best so far, baselines."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from ray import tune

from ablate.tune.status import classify

LIVE_BASELINES: dict[str, Any] = {}  # run folder → the driver's BaselineRunner, for the progress line


class ProgressPrinter(tune.Callback):
    """A one-line status on stdout, printed as trials report and end.

    Ray pickles callbacks into its experiment state and restores them on resume, so this holds only plain
    values and finds the (unpicklable) baseline runner of the live driver through ``LIVE_BASELINES``.
    """

    def __init__(self, run_dir: Path, trials: int, epochs: int):
        self.run_dir, self.trials, self.epochs = str(run_dir), trials, epochs
        self.seen: dict[str, dict[str, Any]] = {}
        self.ended: dict[str, str] = {}  # Tune calls the hooks below before it updates trial.status
        self.last_print = 0.0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.seen[trial.trial_id] = result
        self.print(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.ended[trial.trial_id] = "TERMINATED"
        self.print(trials, force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended[trial.trial_id] = "ERROR"
        self.print(trials, force=True)

    def status_of(self, trial) -> str:
        result = self.seen.get(trial.trial_id) or trial.last_result or {}
        return classify(self.ended.get(trial.trial_id, trial.status), result, self.epochs)

    def print(self, trials, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_print < 2.0:
            return
        self.last_print = now
        counts = {"completed": 0, "pruned": 0, "failed": 0, "running": 0, "pending": 0}
        for trial in trials:
            counts[self.status_of(trial)] += 1
        best = max(((r.get("val_top1", -1), r.get("block", "?")) for r in self.seen.values()
                    if isinstance(r.get("val_top1"), (int, float)) and math.isfinite(r["val_top1"])), default=None)
        best_text = f"best val top-1 {best[0]:.1f}% ({best[1]})" if best else "best —"
        done = counts["completed"] + counts["pruned"] + counts["failed"]
        baselines = LIVE_BASELINES.get(self.run_dir)
        baseline_text = f" | baselines {baselines.done_count()}/{len(baselines.names)}" if baselines else ""
        print(f"[ablate] trials {done}/{self.trials} done: {counts['completed']} completed, {counts['pruned']} pruned, "
              f"{counts['failed']} failed; {counts['running']} running | {best_text}{baseline_text}", flush=True)
