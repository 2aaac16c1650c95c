"""A run's results while it runs: every finished trial, baseline and confirmation lands in the tables at once
(rewritten atomically), and ``progress.json`` says how far the run has got, for ``run_ablation.py status``."""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import pandas as pd

from ablate.results import CURVE_COLUMNS, write_tables
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
                 previous_curves: pd.DataFrame | None = None):
        self.settings, self.run_dir, self.jobs = settings, settings.run_dir, jobs
        self.rows: dict[str, dict[str, Any]] = {}
        self.curves: dict[str, pd.DataFrame] = {}
        for row in ([] if previous is None else previous.to_dict("records")):
            self.rows[str(row["trial_id"])] = row
        if previous_curves is not None and len(previous_curves):
            for trial_id, curve in previous_curves.groupby("trial_id"):
                self.curves[str(trial_id)] = curve
        self.started = time.monotonic()
        self.counts: dict[str, int] = {}
        self.filed: set[Job] = set()  # jobs already filed into the rows

    def add(self, row: dict[str, Any], curve: pd.DataFrame | None) -> None:
        """Record (or replace) one finished model's row and curve."""
        self.rows[row["trial_id"]] = row
        if curve is not None:
            self.curves[row["trial_id"]] = curve

    def poll_jobs(self) -> bool:
        """Take in the jobs that finished since the last poll; True when there were any."""
        new = [job for job in self.jobs.collect(wait=False) if job not in self.filed]
        for job in new:
            outcome = self.jobs.results[job]
            self.add(outcome["row"], curve_frame(outcome["curves"], outcome["row"]) if outcome["curves"] else None)
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
            curves = [c for c in self.curves.values() if len(c)]
            write_tables(self.run_dir, list(self.rows.values()),
                         pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=CURVE_COLUMNS))
        best = self.best()
        progress = {"updated": time.time(), "elapsed_seconds": time.monotonic() - self.started,
                    "trials": self.counts, "jobs": {"done": self.jobs.done_count(), "total": len(self.jobs.jobs)},
                    "best": {"val_top1": best[0], "name": best[1]} if best else None}
        tmp = self.run_dir / f".{PROGRESS_FILE}.tmp"
        tmp.write_text(json.dumps(progress, indent=2))
        os.replace(tmp, self.run_dir / PROGRESS_FILE)


LIVE_RUNS: dict[str, LiveRun] = {}  # run folder → the live record, for the (pickled, so stateless) Tune callback
