"""``python run_ablation.py status results/<run>``: how far a run has got, read from its folder alone.

A running driver rewrites ``trials.parquet`` and ``progress.json`` as trials, baselines and confirmations end;
a finished run's ``run.json`` has its ``finished`` time. Nothing here needs Ray, so it works from any machine that
sees the results folder.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pandas as pd

from ablate.core.errors import UsageError
from ablate.core.files import read_json, read_table
from ablate.core.formatting import duration_text
from ablate.core.schema import FINAL_STATUSES as STATUS_ORDER
from ablate.core.schema import Status, search_trials
from ablate.tune.record import read_progress


def status_lines(run_dir: Path, now: float | None = None) -> list[str]:
    """The run's state in a few lines: running or finished, trials by status, jobs, best so far, elapsed.

    Raises:
        UsageError: The folder is not a run folder.
    """
    if not (run_dir / "run.json").is_file():
        raise UsageError(f"{run_dir} is not a run folder (no run.json): pass results/<run>")
    meta = read_json(run_dir / "run.json")  # damaged: one line naming it
    if not meta:
        raise UsageError(f"{run_dir / 'run.json'} is empty: pass the folder of a run that has started")
    now = time.time() if now is None else now
    progress = read_progress(run_dir)  # damaged or of another shape: one line naming it
    table_path = run_dir / "trials.parquet"
    table = read_table(table_path) if table_path.is_file() else pd.DataFrame(columns=["kind", "status", "phase"])
    finished = meta.get("finished")
    candidates = search_trials(table)
    counts = {s: int((candidates["status"] == s).sum()) for s in STATUS_ORDER}
    live = progress.get("trials") or {}
    running = 0 if finished else int(live.get(Status.RUNNING, 0))
    requested = meta.get("trials_requested", "?")
    state = f"finished {finished}" if finished else "in progress" + (
        f" (tables updated {duration_text(now - progress['updated'])} ago)" if progress.get("updated") else "")
    lines = [f"run {run_dir.name}: {state}",
             f"trials {sum(counts.values())}/{requested} done: " + ", ".join(f"{counts[s]} {s}" for s in STATUS_ORDER)
             + f"; {running} running"]
    jobs = progress.get("jobs")
    if jobs:
        lines.append(f"baselines and confirmations: {jobs['done']}/{jobs['total']} done")
    done = search_trials(table) if len(table) else table
    done = done[done["status"] == Status.COMPLETED] if len(done) else done
    if len(done) and done["val_top1"].notna().any():
        best = done.loc[done["val_top1"].idxmax()]
        lines.append(f"best so far: {best['name']} at {best['val_top1']:.2f} % val top-1 (the run seed's: a selection "
                     "number, not a verdict)")
    else:
        lines.append("best so far: — (no completed candidate yet)")
    elapsed = meta.get("wall_seconds", 0.0) if finished else (
        meta.get("wall_seconds", 0.0) + max(0.0, now - meta["started_at"]) if isinstance(meta.get("started_at"),
                                                                                        (int, float)) else math.nan)
    lines.append(f"elapsed: {duration_text(elapsed)}")
    return lines
