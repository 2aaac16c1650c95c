"""Trainings the run fixes in advance rather than searches for: the baselines under every training seed, and the
best candidates retrained under the extra seeds once the design is done. Each is a Ray task beside the Tune trials;
baselines are cached across runs by protocol, macro, seed and the package's source."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from ablate.analysis.selection import selection_key
from ablate.core.errors import UsageError, error_summary
from ablate.core.files import find_disk_full, read_json, write_json
from ablate.core.schema import ABLATION, CANDIDATE, COMPLETED, CONFIRM, DESIGN, SELECTION_PHASES
from ablate.models import BASELINE_BY_TIMM_NAME, BlockConfig
from ablate.trackers import open_trackers
from ablate.tune.claims import claim, claim_file, release, wait_for_entry
from ablate.tune.collect import Outcome, outcome_of, training_row
from ablate.tune.faults import WorkerLost, worker_death
from ablate.tune.record import RunRecord, json_value
from ablate.tune.settings import RunSettings
from ablate.tune.trainables import cost_columns, node_id, prepare, symmetry_of

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Job:
    """One fixed training: which model (a baseline, or a candidate to confirm), under which training seed."""

    kind: str  # "baseline" | "candidate"
    name: str  # display name: the baseline's, or the candidate's config string
    block: BlockConfig
    seed: int
    phase: str  # "design" (the run's own seed), "confirm" (an extra seed) or "ablation" (any seed of an ablation)

    @property
    def trial_id(self) -> str:
        return f"{'baseline' if self.kind == 'baseline' else self.phase}-{self.name}-s{self.seed}"

    @property
    def label(self) -> str:
        """What the job trains, as Ray's dashboard lists the task: ``baseline ResNet50 s2``, ``confirm
        multiply-twist-w4 s3``, ``ablation relu-dwconv-w2 s1``."""
        return f"{'baseline' if self.kind == 'baseline' else self.phase} {self.name} s{self.seed}"

    @property
    def folder(self) -> str:
        return "baselines" if self.kind == "baseline" else "trials"


def baseline_jobs(settings: RunSettings) -> list[Job]:
    """The space's baselines under the run's seed (design: beside the candidates that selection compares) and under
    every fresh confirmation seed (so that each confirmed candidate has a baseline of the same seed to pair with);
    in an ablation, under each of its seeds."""
    def phase(seed: int) -> str:
        return ABLATION if settings.ablation else DESIGN if seed == settings.seed else CONFIRM
    return [Job("baseline", b.name, b.block, seed, phase(seed))
            for b in (BASELINE_BY_TIMM_NAME[t] for t in settings.space.baselines) for seed in settings.training_seeds]


def ablation_jobs(settings: RunSettings, points: list[dict[str, Any]]) -> list[Job]:
    """Every config of an ablation design under every one of its seeds (none for other designs): nothing is searched
    or selected, so all are Ray tasks, submitted at the start beside the baselines."""
    if not settings.ablation:
        return []
    blocks = [settings.space.config(point) for point in points]
    return [Job(CANDIDATE, str(block), block, seed, ABLATION) for block in blocks for seed in settings.training_seeds]


def longest_first(jobs: list[Job], seconds: dict[str, float]) -> list[Job]:
    """The jobs in decreasing order of their configs' expected seconds (the plan's; unknown ones last, in their
    order): the longest trainings start first, so none is left running alone at the end (list scheduling)."""
    return sorted(jobs, key=lambda job: -seconds.get(str(job.block), 0.0))


def selected(settings: RunSettings, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``confirm`` best completed search candidates by val top-1 under the run's seed: what selection picks.

    Only the design seed's validation split selects; nothing that judges the selected configs (fresh seeds, the
    test split) takes part, so their confirmed numbers carry no winner's curse. Ties are broken by the run's seed
    (:func:`ablate.analysis.selection.selection_key`).
    """
    done = [r for r in rows if r["kind"] == CANDIDATE and r["status"] == COMPLETED and r["phase"] in SELECTION_PHASES]
    return sorted(done, key=lambda r: selection_key(settings.seed, r["val_top1"], r["config"]))[:settings.confirm]


def confirmation_jobs(settings: RunSettings, rows: list[dict[str, Any]]) -> list[Job]:
    """The selected candidates retrained under every fresh confirmation seed (none in an ablation: it selects
    nothing, and its extra seeds are :func:`ablation_jobs`)."""
    if settings.ablation:
        return []
    return [Job(CANDIDATE, r["config"], BlockConfig.parse(r["config"]), seed, CONFIRM)
            for r in selected(settings, rows) for seed in settings.confirmation_seeds]


def code_version(root: Path = PACKAGE_ROOT) -> str:
    """Hash of the package's source: a cached baseline is reused only if the code that trained it is unchanged."""
    digest = hashlib.sha1()
    for path in sorted(root.rglob("*.py")) + sorted(root.rglob("*.yaml")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def data_identity(settings: RunSettings, split_sizes: dict[str, int] | None = None) -> dict[str, Any]:
    """Which data a model trains and is judged on: the dataset, the folder it is read from, the split sizes."""
    folder = str(Path(settings.data_dir).expanduser().resolve()) if settings.data_dir else None
    return {"dataset": settings.protocol.dataset, "data_dir": folder,
            "splits": dict(sorted((split_sizes or {}).items()))}


def baseline_cache_key(settings: RunSettings, name: str, seed: int | None = None,
                       split_sizes: dict[str, int] | None = None) -> str:
    """What a cached baseline must match to be reused: every protocol field (epochs included), the macro, the split
    seed, the training seed, the baseline, the data (:func:`data_identity`), the code version and the source hash of
    every plugin the run imports (a plugin's import may change what any model does)."""
    key = json.dumps({"protocol": settings.protocol.as_dict(), "macro": settings.macro, "seed": settings.seed,
                      "training_seed": settings.seed if seed is None else seed, "baseline": name,
                      "data": data_identity(settings, split_sizes), "code": code_version(),
                      "plugins": sorted(p.source_hash for p in settings.every_plugin)},
                     sort_keys=True, default=str)
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def job_row(job: Job, settings: RunSettings, **outcome: Any) -> dict[str, Any]:
    """A job's table row (see ``collect.training_row``)."""
    return training_row(kind=job.kind, trial_id=job.trial_id, name=job.name, block=job.block, settings=settings,
                        seed=job.seed, phase=job.phase, **outcome)


def train_job(job: Job, settings: RunSettings) -> Outcome:
    """Train one job on this worker (resuming its checkpoint), file its outcome in the run's record, return it."""
    protocol, data, device = prepare(settings)
    measured = {**cost_columns(job.block, settings, data, device), "node": node_id()}
    state_dir = settings.state_dir(job.block, job.seed, job.folder)
    result = settings.train_fn(job.block, protocol, checkpoint_dir=state_dir, seed=job.seed, data=data, device=device)
    if result.status == "completed":
        measured.update(symmetry_of(result.model, data))
    row = job_row(job, settings, status=result.status, reason=result.reason, history=result.history, measured=measured)
    outcome = outcome_of(row, result.history, result.correct)
    RunRecord(settings.run_dir).file(outcome)
    return outcome


class JobRunner:
    """Runs jobs as Ray tasks beside the Tune trials; a crashed job is a failed row with its reason, never cached.

    Args:
        settings: The run's settings.
        cache_dir: Where completed baselines are kept across runs (``results/.cache/baselines``); runs may share it:
            entries are written atomically, and a damaged one is trained again and rewritten.
        split_sizes: The data's split sizes, part of what a cached baseline must match.
    """

    def __init__(self, settings: RunSettings, cache_dir: Path, split_sizes: dict[str, int] | None = None):
        self.settings, self.cache_dir, self.split_sizes = settings, cache_dir, split_sizes
        self.record = RunRecord(settings.run_dir)
        self.trackers = open_trackers(settings)
        self.jobs: list[Job] = []
        self.results: dict[Job, Outcome] = {}
        self.pending: dict[Job, Any] = {}
        self.waiting: set[Job] = set()  # baselines another run is training: a wait for its cache entry is pending
        self._train = ray.remote(train_job)  # exported once; each job's options (its name) set per call
        self._options: dict[str, Any] = {}

    def _cache_file(self, job: Job) -> Path | None:
        if job.kind != "baseline":
            return None
        return self.cache_dir / f"{baseline_cache_key(self.settings, job.name, job.seed, self.split_sizes)}.json"

    def _cached(self, job: Job) -> Outcome | None:
        """A usable cache entry of a job, or None (no entry, or a damaged one: said in one line, then retrained)."""
        path = self._cache_file(job)
        if path is None or not path.is_file():
            return None
        try:
            outcome = read_json(path)
            problem = None if _complete(outcome) else "an incomplete entry"
        except UsageError as err:
            problem = str(err)
        if problem is None:
            return outcome
        print(f"[ablate] warning: cached baseline {path} is unusable ({problem}); training {job.name} seed "
              f"{job.seed} again", flush=True)
        return None

    def submit(self, jobs: list[Job], resources: dict[str, float]) -> None:
        """Start ``jobs``; a cached baseline is filed in the run's record at once."""
        memory = {"memory": resources["memory"]} if resources.get("memory") else {}  # the measured budget's
        self._options = dict(num_cpus=resources.get("cpu", 1), num_gpus=resources.get("gpu", 0),
                             max_retries=self.settings.max_failures, **memory)
        for job in jobs:
            self.jobs.append(job)
            cached = self._cached(job)
            if cached is not None:
                self.results[job] = cached
                self.record.file(cached)
                self._track(job, cached, reused=True)
            else:
                self._start(job)

    def _start(self, job: Job) -> None:
        """Train a job, or — a baseline another run sharing the cache has claimed — wait for its entry instead."""
        entry = self._cache_file(job)
        if entry is not None and not claim(entry):
            print(f"[ablate] {job.label}: another run is training it ({claim_file(entry)}): waiting for its cached "
                  "outcome instead of training it again", flush=True)
            self.waiting.add(job)
            self.pending[job] = ray.remote(wait_for_entry).options(num_cpus=0, name=f"wait for {job.label}") \
                .remote(entry, _complete)
            return
        self.pending[job] = self._train.options(name=job.label, **self._options).remote(job, self.settings)

    def done_count(self) -> int:
        return len(self.results) + len(self._ready(timeout=0))

    def _ready(self, timeout: float | None) -> list[Job]:
        if not self.pending:
            return []
        refs = {ref: job for job, ref in self.pending.items()}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
        return [refs[ref] for ref in ready]

    def collect(self, wait: bool = True) -> list[Job]:
        """Take in the jobs that ended since the last call (with ``wait``, wait for every pending one): a completed
        baseline goes into the cache; a crashed job, which could not file itself, is filed as a failed row with its
        reason (unless it had filed itself completed before it died). Returns the jobs taken in.

        Raises:
            WorkerLost: A job's worker died (Ray's memory monitor, a lost node, a SIGKILL) on every one of its
                attempts: not the model's failure, so nothing is filed for it and the run stops (``--resume`` trains
                it on from its checkpoint); the other jobs that ended are taken in first.
        """
        ended = self._ready(timeout=None if wait else 0)
        record = self.record.outcomes() if ended else {}  # read after the jobs ended: what their workers filed
        lost = None
        for job in ended:
            if job in self.waiting:
                self._take_waited(job)
                continue
            filed = record.get(job.trial_id)  # what the worker filed, if it got that far
            try:
                outcome = ray.get(self.pending.pop(job))
                unfiled = filed is None  # a worker that cannot see the run folder (it must: its checkpoints are there)
            except Exception as err:  # a crashed job is a row with its reason, not a crashed run
                unfiled = filed is None or filed["row"]["status"] != "completed"  # or it died after filing
                death = worker_death(err)
                if unfiled and death is not None:
                    lost = lost or WorkerLost(job.trial_id, death, self.settings.max_failures + 1)
                    continue
                full = find_disk_full(err, self.settings.run_dir) if unfiled else None
                if full is not None:  # not the model's failure either: stop in one line, --resume trains it on
                    lost = lost or full
                    continue
                outcome = outcome_of(job_row(job, self.settings, status="failed", reason=error_summary(err)), [],
                                     {}) if unfiled else filed
            if unfiled:
                self.record.file(outcome)
            cached = self._cache_file(job)
            if cached is not None and outcome["row"]["status"] == "completed":
                write_json(cached, outcome, default=json_value)
            self.results[job] = outcome
            self._track(job, outcome)
        for job in ended:  # after the entries are written: a run waiting for one finds it as the claim goes
            if self._cache_file(job) is not None and job not in self.pending:
                release(self._cache_file(job))
        if lost is not None:
            raise lost
        return ended

    def _take_waited(self, job: Job) -> None:
        """A wait for another run's baseline ended: file the entry it wrote, or (its claim went without one) train
        the baseline here."""
        self.waiting.discard(job)
        try:
            outcome = ray.get(self.pending.pop(job))
        except Exception:  # the wait itself was lost: train it here rather than not at all
            outcome = None
        if outcome is None:
            self._start(job)
            return
        print(f"[ablate] {job.label}: taken from the cache, where another run filed it", flush=True)
        self.results[job] = outcome
        self.record.file(outcome)
        self._track(job, outcome, reused=True)

    def _track(self, job: Job, outcome: Outcome, reused: bool = False) -> None:
        for tracker in self.trackers:
            tracker.log_training(job.label, outcome, reused)


def _complete(outcome: dict[str, Any]) -> bool:
    """A cache entry as :meth:`JobRunner.collect` writes it: a completed row, its curve and its per-image evidence."""
    row = outcome.get("row")
    return isinstance(row, dict) and row.get("status") == "completed" and isinstance(outcome.get("curves"), list) \
        and isinstance(outcome.get("predictions"), dict) and bool(outcome["predictions"])

