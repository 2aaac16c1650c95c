"""A run's results while it runs: every finished trial, baseline and confirmation lands in the tables at once
(rewritten atomically), and ``progress.json`` says how far the run has got, for ``run_ablation.py status``."""

from __future__ import annotations

import math
import time
from typing import Any

import pandas as pd

from ablate.files import write_json
from ablate.results import prediction_frame, write_tables
from ablate.schema import CURVE_COLUMNS, PREDICTION_COLUMNS
from ablate.tune.collect import curve_frame
from ablate.tune.jobs import Job, JobRunner
from ablate.tune.settings import RunSettings

PROGRESS_FILE = "progress.json"


class LiveRun:
    """The driver's record of a run in progress: rows by trial id, their curves, and the progress counts.

    Args:
        settings: The run's settings (rows are built from them).
        jobs: The run's fixed trainings (baselines, confirmations), polled for finished ones.
        previous: The table an interrupted run had written (``--resume``), kept until its rows are redone.
    """

    def __init__(self, settings: RunSettings, jobs: JobRunner, previous: pd.DataFrame | None = None,
                 previous_curves: pd.DataFrame | None = None, previous_predictions: pd.DataFrame | None = None):
        self.settings, self.run_dir, self.jobs = settings, settings.run_dir, jobs
        self.rows: dict[str, dict[str, Any]] = {}
        self.curves: dict[str, pd.DataFrame] = {}
        self.predictions: dict[str, pd.DataFrame] = {}
        for row in ([] if previous is None else previous.to_dict("records")):
            self.rows[str(row["trial_id"])] = row
        for store, frame in ((self.curves, previous_curves), (self.predictions, previous_predictions)):
            if frame is not None and len(frame):
                store.update((str(trial_id), part) for trial_id, part in frame.groupby("trial_id"))
        self.started = time.monotonic()
        self.counts: dict[str, int] = {}
        self.filed: set[Job] = set()  # jobs already filed into the rows
        self.uncounted: set[str] = set()  # configs whose uncounted ops were already said

    def add(self, row: dict[str, Any], curve: pd.DataFrame | None, predictions: pd.DataFrame | None = None) -> None:
        """Record (or replace) one finished model's row, curve and per-image evidence; the first row of a config with
        ops fvcore could not count says so in one warning line."""
        self.rows[row["trial_id"]] = row
        uncounted = row.get("uncounted_ops")
        if isinstance(uncounted, str) and uncounted and row.get("config") not in self.uncounted:
            self.uncounted.add(row.get("config"))
            print(f"[ablate] warning: {row.get('name')}: fvcore cannot count {uncounted}; its MACs and element-wise "
                  "ops leave that work out (a lower bound, named in the table's uncounted_ops and the report)",
                  flush=True)
        for store, frame in ((self.curves, curve), (self.predictions, predictions)):
            if frame is not None:
                store[row["trial_id"]] = frame

    def poll_jobs(self) -> bool:
        """Take in the jobs that finished since the last poll; True when there were any."""
        new = [job for job in self.jobs.collect(wait=False) if job not in self.filed]
        for job in new:
            outcome = self.jobs.results[job]
            row = outcome["row"]
            self.add(row, curve_frame(outcome["curves"], row) if outcome["curves"] else None,
                     prediction_frame(outcome.get("predictions") or {}, row))
            self.filed.add(job)
        return bool(new)

    def best(self) -> tuple[float, str] | None:
        """The best completed candidate so far (val top-1, name), interrupted runs' rows included."""
        done = [(r["val_top1"], r["name"]) for r in self.rows.values() if r.get("kind") == "candidate"
                and r.get("status") == "completed" and isinstance(r.get("val_top1"), (int, float))
                and math.isfinite(r["val_top1"])]
        return max(done) if done else None

    def write(self, counts: dict[str, int] | None = None) -> None:
        """Rewrite the tables (atomically) and progress.json from what is known now."""
        if counts is not None:
            self.counts = counts
        if self.rows:
            write_tables(self.run_dir, list(self.rows.values()), _stacked(self.curves, CURVE_COLUMNS),
                         _stacked(self.predictions, PREDICTION_COLUMNS))
        best = self.best()
        progress = {"updated": time.time(), "elapsed_seconds": time.monotonic() - self.started,
                    "trials": self.counts, "jobs": {"done": self.jobs.done_count(), "total": len(self.jobs.jobs)},
                    "best": {"val_top1": best[0], "name": best[1]} if best else None}
        write_json(self.run_dir / PROGRESS_FILE, progress, indent=2)


def _stacked(frames: dict[str, pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    parts = [f for f in frames.values() if len(f)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


LIVE_RUNS: dict[str, LiveRun] = {}  # run folder → the live record, for the (pickled, so stateless) Tune callback
