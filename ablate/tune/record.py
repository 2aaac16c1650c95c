"""A run's record: one file per trained model, filed the moment it ends, and the tables rebuilt from those files.

``records/<trial id>.json`` holds one model's outcome — its table ``row``, its learning curve (``curves``, the
trainer's epoch log) and its per-image evidence (``predictions``, split → hits as ``encode_hits`` text) — in the
format a cached baseline is kept in. A baseline or confirmation is filed by the Ray worker that trained it; a Tune
trial by the driver's callback as Tune ends it (a pruned or crashed trial cannot file itself). Every file is
written atomically, so whatever kills the driver, a model that ended is on disk, and a resumed run starts from the
folder as it is. ``trials.parquet`` and the other tables are a view of the folder (plus ``timings.json``, the
side-by-side timing), rewritten whole as models are filed (once 10× the last rewrite's time has passed, and at each
phase's end), and ``progress.json``, written after each filing, says how far the run has got.

Nothing here lives only in memory: the Tune callback, which Ray pickles into its experiment state, and the driver
each open the record by its folder and see the same run.

Every completed model filed here also goes into the store (``ablate.store``) through the run's link: given by the
caller (a Ray worker gets it with its job, and needs no shared folder for the store's copy), else read from the
run's run.json (``store`` and ``store_context``, which the driver writes before anything trains). A record without
either (a run started before the store) files its folder only.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from time import monotonic
from typing import TYPE_CHECKING, Any, Callable, Iterable, NamedTuple

from ablate.core.errors import UsageError
from ablate.core.files import damaged, read_json, write_json
from ablate.core.schema import CANDIDATE, COMPLETED, CURVE_COLUMNS, PREDICTION_COLUMNS, TRIAL_COLUMNS, search_trials

# pandas and ablate.results are imported where a table is built, not here: a Ray worker opens the record only to file
# its model (json), and importing pandas cost each worker ~0.4 s and ~60 MB
if TYPE_CHECKING:  # collect needs torch; reading a run folder (status, report) must not
    import pandas as pd

    from ablate.store import RunLink
    from ablate.tune.collect import Outcome
    from ablate.tune.settings import RunSettings

RECORDS_FOLDER = "records"
TIMINGS_FILE = "timings.json"
PROGRESS_FILE = "progress.json"
REUSED_FROM = "reused_from"  # as ablate.store names it (imported here, it would bring SQLAlchemy to status)
# While models are being filed, the tables are rewritten only once the time since the last rewrite is this many
# times what that rewrite took: a rewrite reads every record, so rewriting after each filing made a run's cost grow
# as the square of its models; this way rewrites take at most ~1/10 of the driver's time at any size
TABLES_REWRITE_RATIO = 10.0


class _Filed(NamedTuple):
    """One record as read: the file's (mtime, size) when read, its outcome, and the outcome's table parts."""

    stamp: tuple[int, int]
    outcome: Outcome
    curve: pd.DataFrame | None
    predictions: pd.DataFrame


class RunRecord:
    """The record of the run in ``run_dir`` (see the module docstring); cheap to open, safe to pickle.

    Args:
        run_dir: The run's folder (on a cluster, on storage every node sees, as Tune's ``storage_path`` is).
        link: The run's link to the store; None: the one run.json names (none if it names none).
    """

    def __init__(self, run_dir: str | Path, link: RunLink | None = None):
        self.run_dir = Path(run_dir)
        self._read: dict[str, _Filed] = {}
        self._link, self._linked = link, link is not None
        self._tables_at, self._tables_took, self._tables_behind = -math.inf, 0.0, False

    def __getstate__(self) -> dict[str, Any]:
        return {"run_dir": self.run_dir, "link": self._link}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["run_dir"], state.get("link"))

    @property
    def link(self) -> RunLink | None:
        """The run's link to the store (read from run.json once, where the caller gave none)."""
        if not self._linked:
            self._link, self._linked = store_link(self.run_dir), True
        return self._link

    @property
    def folder(self) -> Path:
        return self.run_dir / RECORDS_FOLDER

    def file(self, outcome: Outcome) -> None:
        """File (or replace) one model's outcome, atomically, under its trial id, and (completed) in the store."""
        write_json(self.folder / f"{outcome['row']['trial_id']}.json", outcome, default=json_value)
        if self.link is not None:
            self.link.file(outcome)

    def refile(self) -> None:
        """File every completed model of the record into the store again: a resumed run's store then holds what a
        stopped session filed here but could not file there (a full disk, a store unreachable); a model the store
        holds already stays as it is."""
        if self.link is not None:
            for outcome in self.outcomes().values():
                self.link.file(outcome)

    def outcomes(self) -> dict[str, Outcome]:
        """Every filed outcome by trial id (files unchanged since the last call are not read again)."""
        return {trial_id: filed.outcome for trial_id, filed in self._entries().items()}

    def rows(self) -> list[dict[str, Any]]:
        return [outcome["row"] for outcome in self.outcomes().values()]

    def _entries(self) -> dict[str, _Filed]:
        from ablate.results import prediction_frame

        current = {}
        for path in sorted(self.folder.glob("[!.]*.json")) if self.folder.is_dir() else []:  # not a write under way
            stat = path.stat()
            stamp, filed = (stat.st_mtime_ns, stat.st_size), self._read.get(path.stem)
            if filed is None or filed.stamp != stamp:
                outcome = read_json(path)  # a damaged record: one line naming it
                row = outcome["row"]
                filed = _Filed(stamp, outcome, curve_frame(outcome["curves"], row) if outcome.get("curves") else None,
                               prediction_frame(outcome.get("predictions") or {}, row))
            current[path.stem] = filed
        self._read = current
        return current

    def save_timings(self, timings: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Add the side-by-side timing of configs (config → latency / throughput columns) to ``timings.json``.

        A config timed again gets its new numbers; one this session did not time (its timer died, or it timed
        nothing) keeps the numbers an earlier session measured: the file never loses a measurement.

        Returns:
            Every config's timing now on file.
        """
        merged = {**read_json(self.run_dir / TIMINGS_FILE), **timings}
        write_json(self.run_dir / TIMINGS_FILE, merged, default=json_value)
        return merged

    def file_missing(self, settings: "RunSettings", results: Iterable[Any]) -> list[str]:
        """File every trial Tune finished that has no record (a record deleted, or lost with the driver that was
        filing it), rebuilt as the progress callback builds it: Tune's last result of the trial (its costs,
        symmetry, node, status) with the epoch log and per-image hits the trainer left in the block's folder.
        Each one is said in one line.

        Args:
            settings: The run's settings.
            results: Tune's results of the run's trials (a ``ResultGrid``; each with ``metrics``, ``config`` and
                ``error``).

        Returns:
            The trial ids filed.
        """
        from ablate.tune.collect import candidate_outcome

        filed, rebuilt = self.outcomes(), []
        for result in results:
            metrics, config = result.metrics or {}, result.config or {}
            trial_id = metrics.get("trial_id")
            if not trial_id or not config or trial_id in filed:
                continue
            outcome = candidate_outcome(settings, config, metrics, trial_id, result.error)
            self.file(outcome)
            rebuilt.append(trial_id)
            row = outcome["row"]
            folder = settings.state_dir(settings.space.block_of(config))
            lacks = "; its per-image hits are gone (no predictions.npz there): it is left out of every paired " \
                "comparison" if row["status"] == COMPLETED and not outcome["predictions"] else ""
            print(f"[ablate] trial {trial_id} ({row['name']}, {row['status']}) had no record in {self.folder}: "
                  f"rebuilt from Tune's last result and {folder} ({len(outcome['curves'])} epochs){lacks}", flush=True)
        return rebuilt

    def check_tune_state(self, tune_dir: Path) -> None:
        """Refuse a resume that would start Tune afresh over search trials this record holds (Ray's state of the
        run, ``tune/``, is gone or unreadable): the study's blocks would be trained again beside their outcomes.

        Raises:
            UsageError: The record holds search trials and ``tune_dir`` cannot be restored.
        """
        import pandas as pd

        held = search_trials(pd.DataFrame(self.rows(), columns=["kind", "phase", "status"]))
        if len(held):
            raise UsageError(f"{tune_dir} holds no Tune state to restore, but {self.folder} holds {len(held)} of "
                             "the run's search trials: restore tune/ from a backup, or start a new run")

    def best(self) -> tuple[float, str] | None:
        """The best completed candidate so far (val top-1, name), an interrupted session's included."""
        return best_so_far(self.rows())

    def write(self, counts: dict[str, int] | None = None, jobs: tuple[int, int] | None = None, *,
              now: bool = True) -> tuple[float, str] | None:
        """Rewrite the tables (atomically) from the filed outcomes, and progress.json.

        Args:
            counts: Tune's trials by status now; without it, the filed search trials by status (all of them have
                ended once Tune is done).
            jobs: Baselines and confirmations (done, total).
            now: Rewrite the tables now (a phase's end); False, after a filing: only when it is their turn
                (``TABLES_REWRITE_RATIO``), else they are left behind until :meth:`write_due` or the next write.
                Every filed model is in ``records/`` either way.

        Returns:
            The best completed candidate so far (see :meth:`best`).
        """
        import pandas as pd

        from ablate.results import write_tables

        filed = list(self._entries().values())
        rows = [f.outcome["row"] for f in filed]
        if rows and (now or self._tables_due()):
            started = monotonic()
            timings = read_json(self.run_dir / TIMINGS_FILE)
            write_tables(self.run_dir, [{**table_row(f.outcome), **timings.get(f.outcome["row"].get("config"), {})}
                                        for f in filed],
                         _stacked([f.curve for f in filed], CURVE_COLUMNS),
                         _stacked([f.predictions for f in filed], PREDICTION_COLUMNS))
            self._tables_at = monotonic()
            self._tables_took, self._tables_behind = self._tables_at - started, False
        else:
            self._tables_behind = bool(rows)
        if counts is None:
            counts = search_trials(pd.DataFrame(rows, columns=["kind", "phase", "status"]))["status"] \
                .value_counts().to_dict()
        best = best_so_far(rows)
        progress = {"updated": time.time(), "trials": counts,
                    "jobs": {"done": jobs[0], "total": jobs[1]} if jobs else None,
                    "best": {"val_top1": best[0], "name": best[1]} if best else None}
        write_json(self.run_dir / PROGRESS_FILE, progress, indent=2)
        return best

    def write_due(self, progress: Callable[[], tuple[dict[str, int] | None, tuple[int, int] | None]] | None = None
                  ) -> None:
        """Rewrite the tables if a filing left them behind and it is their turn now (called while a run waits, at
        every step of Tune's loop: ``progress`` gives :meth:`write`'s ``counts`` and ``jobs``, asked for only when
        the tables are written)."""
        if self._tables_behind and self._tables_due():
            self.write(*(progress() if progress else (None, None)))

    def _tables_due(self) -> bool:
        return monotonic() - self._tables_at >= TABLES_REWRITE_RATIO * self._tables_took


STORE_CONTEXT = "store_context"  # run.json's key holding the run-level parts of its models' store keys


def store_link(run_dir: Path) -> RunLink | None:
    """The run's link to the store as its run.json names it (None: a run started before the store)."""
    meta = read_json(run_dir / "run.json")
    if not meta.get(STORE_CONTEXT):
        return None
    from ablate.store import RunLink, open_store, store_url

    return RunLink(open_store(store_url(meta.get("store"), run_dir.parent)), str(run_dir), meta[STORE_CONTEXT])


def unstarted_run(run_dir: Path) -> UsageError | None:
    """The one-line error for a folder that exists without a run.json (a run stopped before it wrote it: nothing
    trained there, as run.json is written before any training starts), or None when it is not that.

    Args:
        run_dir: A run folder asked for by name (to resume, or to start a new run in).
    """
    if not run_dir.is_dir() or (run_dir / "run.json").exists():
        return None
    held = sum(1 for _ in run_dir.rglob("*"))
    return UsageError(f"{run_dir} has no run.json: a run stopped before it started training there ({held} files, "
                      f"none of them a trained model); delete the folder (rm -r {run_dir}) and start the run again, "
                      "or pass another --name")


def read_progress(run_dir: Path) -> dict[str, Any]:
    """progress.json as :meth:`RunRecord.write` writes it ({} when there is none).

    Raises:
        UsageError: The file is damaged or not of that shape (one line naming it).
    """
    path = run_dir / PROGRESS_FILE
    progress = read_json(path)
    trials, jobs = progress.get("trials", {}), progress.get("jobs")
    shapes = {"updated": isinstance(progress.get("updated", 0), (int, float)),
              "trials": isinstance(trials, dict) and all(isinstance(v, int) for v in trials.values()),
              "jobs": jobs is None or isinstance(jobs, dict) and all(isinstance(jobs.get(k), int)
                                                                    for k in ("done", "total"))}
    wrong = [key for key, ok in shapes.items() if not ok]
    if wrong:
        raise damaged(path, f"{', '.join(repr(k) for k in wrong)} not as the run writes it")
    return progress


def earlier_lives_seconds(meta: dict[str, Any], run_dir: Path) -> float:
    """The wall time a run has had before this session: every earlier session (life) of it, a killed one too.

    run.json's ``wall_seconds`` holds the sessions before the last one, and ``started_at`` the last one's start;
    a session that finished added itself to ``wall_seconds`` (``finished`` set), while a killed one ended at its
    last write into the run folder (the newest file there), which is what it adds.

    Args:
        meta: run.json as the earlier session left it ({} for a new run).
        run_dir: The run folder.
    """
    before = float(meta.get("wall_seconds") or 0.0)
    started = meta.get("started_at")
    if meta.get("finished") or not isinstance(started, (int, float)):
        return before
    return before + max(0.0, last_write(run_dir) - started)


def last_write(folder: Path) -> float:
    """The newest modification time of any file under ``folder`` (0 when there is none)."""
    newest = 0.0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                newest = max(newest, os.stat(os.path.join(root, name)).st_mtime)
            except OSError:
                pass  # a temporary file swapped away while we walked
    return newest


def table_row(outcome: Outcome) -> dict[str, Any]:
    """A filed outcome's row as the tables show it: with ``reused_from`` (the run a reused model was trained in;
    empty for a model this run trained) once the tables' schema has that column (``ablate.core.schema.TRIAL_COLUMNS``:
    a column it lacks would be taken for an axis of the space)."""
    if REUSED_FROM not in TRIAL_COLUMNS:
        return outcome["row"]
    return {**outcome["row"], REUSED_FROM: outcome.get(REUSED_FROM) or ""}


def best_so_far(rows: list[dict[str, Any]]) -> tuple[float, str] | None:
    """The completed candidate with the highest val top-1 among ``rows`` (val top-1, name), or None."""
    done = [(r["val_top1"], r["name"]) for r in rows if r.get("kind") == CANDIDATE and r.get("status") == COMPLETED
            and isinstance(r.get("val_top1"), (int, float)) and math.isfinite(r["val_top1"])]
    return max(done) if done else None


def curve_frame(history: list[dict[str, Any]], row: dict[str, Any]) -> pd.DataFrame:
    """One learning curve in the curves table's columns."""
    import pandas as pd

    return pd.DataFrame(list(history)).assign(trial_id=row["trial_id"], name=row["name"], kind=row["kind"]) \
        .reindex(columns=CURVE_COLUMNS)


def _stacked(frames: list[pd.DataFrame | None], columns: list[str]) -> pd.DataFrame:
    import pandas as pd

    parts = [f for f in frames if f is not None and len(f)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def json_value(value: Any) -> Any:
    """numpy scalars as numbers, anything else JSON has no type for as its text."""
    return value.item() if hasattr(value, "item") else float(value) if hasattr(value, "__float__") else str(value)
