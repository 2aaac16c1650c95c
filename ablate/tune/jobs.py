"""Trainings the run fixes in advance rather than searches for: the baselines under every training seed, and the
best candidates retrained under the extra seeds once the design is done. Each is a Ray task beside the Tune trials,
looked up in the store first (``ablate.store``): a model any run has trained under the same key is reused, not
trained again."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from ablate.analysis.selection import selection_key
from ablate.core.errors import error_summary
from ablate.core.files import find_disk_full
from ablate.core.schema import ABLATION, BASELINE, CANDIDATE, COMPLETED, CONFIRM, DESIGN, FAILED, SELECTION_PHASES
from ablate.models import BASELINE_BY_TIMM_NAME, BASELINES, BlockConfig
from ablate.models.fingerprint import network_fingerprint
from ablate.store import REUSED_FROM, Filing, Owner, RunLink, model_key
from ablate.trackers import open_trackers
from ablate.tune.claims import Heartbeat, wait_for_model
from ablate.tune.collect import Outcome, identity_columns, outcome_of, training_row
from ablate.tune.faults import WorkerLost, worker_death
from ablate.tune.record import RunRecord
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
        return f"{BASELINE if self.kind == BASELINE else self.phase}-{self.name}-s{self.seed}"

    @property
    def label(self) -> str:
        """What the job trains, as Ray's dashboard lists the task: ``baseline ResNet50 s2``, ``confirm
        multiply-twist-w4 s3``, ``ablation relu-dwconv-w2 s1``."""
        return f"{BASELINE if self.kind == BASELINE else self.phase} {self.name} s{self.seed}"

    @property
    def folder(self) -> str:
        return "baselines" if self.kind == BASELINE else "trials"


def baseline_jobs(settings: RunSettings) -> list[Job]:
    """The space's baselines under the run's seed (design: beside the candidates that selection compares) and under
    every fresh confirmation seed (so that each confirmed candidate has a baseline of the same seed to pair with);
    in an ablation, under each of its seeds."""
    def phase(seed: int) -> str:
        return ABLATION if settings.ablation else DESIGN if seed == settings.seed else CONFIRM
    return [Job(BASELINE, b.name, b.block, seed, phase(seed))
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


# The package's parts that read or show filed models but never make one (nothing in them reaches a worker's row,
# curve or per-image hits): editing them keeps the store's models reusable. Everything else is hashed.
# (results.py encodes the per-image hits and planning/ times the models a worker measures: both are hashed.)
NOT_TRAINING_CODE = ("analysis", "cli", "report", "store", "trackers", "search_spaces", "examples", "__main__.py",
                     "monitor.py")


def code_version(root: Path = PACKAGE_ROOT) -> str:
    """Hash of the source that trains a model (the package but :data:`NOT_TRAINING_CODE`): a filed model is reused
    only if that code is unchanged — a new report or command line keeps every model, a new trainer, model, data
    path, recipe, cost count or job keeps none."""
    digest = hashlib.sha1()
    for path in sorted(root.rglob("*.py")) + sorted(root.rglob("*.yaml")):
        if path.relative_to(root).parts[0] in NOT_TRAINING_CODE:
            continue
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
    """The store key of a baseline (``name``: its display name) under training seed ``seed`` (the run's by
    default): what any model key holds (:func:`store_context`: every protocol field, epochs included, the macro,
    the split seed, the data, the code version, the source hash of every plugin the run imports — a plugin's
    import may change what any model does), the baseline's network and the training seed."""
    network = network_fingerprint(BASELINES[name], settings.macro)
    return model_key(store_context(settings, split_sizes), network, settings.seed if seed is None else seed)


def store_context(settings: RunSettings, split_sizes: dict[str, int] | None = None) -> dict[str, Any]:
    """The run-level parts of every model key of a run (``ablate.store.model_key`` adds the network and the
    training seed): every protocol field (epochs included), the macro, the split seed, the data
    (:func:`data_identity`), the code version and the source hash of every plugin the run imports."""
    parts = {"protocol": settings.protocol.as_dict(), "macro": settings.macro, "split_seed": settings.seed,
             "data": data_identity(settings, split_sizes), "code": code_version(),
             "plugins": sorted(p.source_hash for p in settings.every_plugin)}
    return json.loads(json.dumps(parts, default=str))  # plain JSON values: what the store keeps and hashes


def job_row(job: Job, settings: RunSettings, **outcome: Any) -> dict[str, Any]:
    """A job's table row (see ``collect.training_row``)."""
    return training_row(kind=job.kind, trial_id=job.trial_id, name=job.name, block=job.block, settings=settings,
                        seed=job.seed, phase=job.phase, **outcome)


def train_job(job: Job, settings: RunSettings, link: RunLink | None = None) -> Outcome:
    """Train one job on this worker (resuming its checkpoint), file its outcome in the run's record and straight
    into the store (``link``: on a cluster, the worker needs no shared folder for it), return it."""
    protocol, data, device = prepare(settings)
    measured = {**cost_columns(job.block, settings, data, device), "node": node_id()}
    state_dir = settings.state_dir(job.block, job.seed, job.folder)
    result = settings.train_fn(job.block, protocol, checkpoint_dir=state_dir, seed=job.seed, data=data, device=device)
    if result.status == COMPLETED:
        measured.update(symmetry_of(result.model, data))
    row = job_row(job, settings, status=result.status, reason=result.reason, history=result.history, measured=measured)
    outcome = outcome_of(row, result.history, result.correct)
    RunRecord(settings.run_dir, link).file(outcome)
    return outcome


def reused_outcome(job: Job, settings: RunSettings, filing: Filing, run: str) -> Outcome:
    """A filed model as this run's row of ``job``: the model's measurements, curve and per-image hits under the
    job's trial id, kind, name, config, seed and phase, and ``reused_from`` naming the run that trained it (empty
    when that is this run: a resumed run finding what it filed before it stopped)."""
    row = {**filing.outcome["row"], "kind": job.kind, "trial_id": job.trial_id, "name": job.name,
           **identity_columns(job.block, settings.macro), "seed": job.seed, "phase": job.phase}
    trained_in = "" if filing.trained_in == run else Path(filing.trained_in).name
    return {**filing.outcome, "row": row, REUSED_FROM: trained_in}


class JobRunner:
    """Runs jobs as Ray tasks beside the Tune trials; a job the store holds is reused instead, and a crashed job is
    a failed row with its reason (never filed in the store).

    Args:
        settings: The run's settings.
        link: The run's link to the store (``ablate.store.RunLink``): where every job is looked up before it is
            trained, claimed while it trains (runs sharing the store train it once), and filed once trained.
    """

    def __init__(self, settings: RunSettings, link: RunLink):
        self.settings, self.link = settings, link
        self.record = RunRecord(settings.run_dir, link)
        self.trackers = open_trackers(settings)
        self.jobs: list[Job] = []
        self.results: dict[Job, Outcome] = {}
        self.pending: dict[Job, Any] = {}
        self.waiting: set[Job] = set()  # jobs another run is training: a wait for its filing is pending
        self.owner = Owner(link.run)
        self.heartbeat = Heartbeat(link.store, self.owner)
        self.claimed: set[str] = set()  # the keys this driver claims
        self._train = ray.remote(train_job)  # exported once; each job's options (its name) set per call
        self._options: dict[str, Any] = {}

    def key(self, job: Job) -> str:
        """The store key of what ``job`` trains."""
        return self.link.key(network_fingerprint(job.block, self.settings.macro), job.seed)

    def submit(self, jobs: list[Job], resources: dict[str, float]) -> None:
        """Start ``jobs``; one the store holds is filed in the run's record at once, as reused."""
        memory = {"memory": resources["memory"]} if resources.get("memory") else {}  # the measured budget's
        self._options = dict(num_cpus=resources.get("cpu", 1), num_gpus=resources.get("gpu", 0),
                             max_retries=self.settings.max_failures, **memory)
        reused = 0
        for job in jobs:
            self.jobs.append(job)
            found = self.link.store.get(self.key(job))
            if found is not None:
                reused += self._reuse(job, found)
            else:
                self._start(job)
        if reused:
            print(f"[ablate] {reused} of {len(jobs)} trainings taken from the store {self.link.store.url}, where "
                  "other runs filed them: reused, not trained again", flush=True)

    def _reuse(self, job: Job, found: Filing) -> bool:
        """File a model the store holds as this run's row of ``job``; True when another run trained it."""
        outcome = reused_outcome(job, self.settings, found, self.link.run)
        self.results[job] = outcome
        self.record.file(outcome)
        self._track(job, outcome, reused=bool(outcome[REUSED_FROM]))
        return bool(outcome[REUSED_FROM])

    def _start(self, job: Job) -> None:
        """Claim and train a job, or — another run sharing the store has claimed it — wait for its filing."""
        key = self.key(job)
        if not self.link.store.claim(key, self.owner):
            holder = self.link.store.holder(key)
            who = f"run {Path(holder.run).name} on {holder.host}, pid {holder.pid}" if holder else "another run"
            print(f"[ablate] {job.label}: {who} is training it: waiting for it in the store instead of training it "
                  "again", flush=True)
            self.waiting.add(job)
            self.pending[job] = ray.remote(wait_for_model).options(num_cpus=0, name=f"wait for {job.label}") \
                .remote(self.link.store, key)
            return
        found = self.link.store.get(key)  # filed between the lookup and the claim
        if found is not None:
            self.link.store.release(key, self.owner)
            self._reuse(job, found)
            return
        self.claimed.add(key)
        self.heartbeat.start()
        self.pending[job] = self._train.options(name=job.label, **self._options).remote(job, self.settings, self.link)

    def done_count(self) -> int:
        return len(self.results) + len(self._ready(timeout=0))

    def _ready(self, timeout: float | None) -> list[Job]:
        if not self.pending:
            return []
        refs = {ref: job for job, ref in self.pending.items()}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
        return [refs[ref] for ref in ready]

    def collect(self, wait: bool = True) -> list[Job]:
        """Take in the jobs that ended since the last call (with ``wait``, wait for every pending one): each is
        filed in the record and the store (a worker that could not file it itself, too); a crashed job, which
        could not file itself, is filed as a failed row with its reason (unless it had filed itself completed
        before it died); each ended job's claim is released. Returns the jobs taken in.

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
            except Exception as err:  # a crashed job is a row with its reason, not a crashed run
                unfiled = filed is None or filed["row"]["status"] != COMPLETED  # or it died after filing
                death = worker_death(err)
                if unfiled and death is not None:
                    lost = lost or WorkerLost(job.trial_id, death, self.settings.max_failures + 1)
                    continue
                full = find_disk_full(err, self.settings.run_dir) if unfiled else None
                if full is not None:  # not the model's failure either: stop in one line, --resume trains it on
                    lost = lost or full
                    continue
                outcome = outcome_of(job_row(job, self.settings, status=FAILED, reason=error_summary(err)), [],
                                     {}) if unfiled else filed
            self.record.file(outcome)  # again where the worker filed it: the store keeps its first filing
            self.results[job] = outcome
            self._track(job, outcome)
        for job in ended:  # after the filings: a run waiting for one finds it as the claim goes
            key = self.key(job)
            if key in self.claimed and job not in self.pending:
                self.link.store.release(key, self.owner)
                self.claimed.discard(key)
        if lost is not None:
            raise lost
        return ended

    def close(self) -> None:
        """The run's trainings are over (or it stops): stop renewing its claims now, not at the heartbeat's next
        beat, up to ``RENEW_EVERY_S`` later, when a caller that runs on in this process may have moved the store."""
        self.heartbeat.stop()

    def _take_waited(self, job: Job) -> None:
        """A wait for another run's training ended: file what it filed, or (its claim went without a filing) train
        the job here."""
        self.waiting.discard(job)
        try:
            found = ray.get(self.pending.pop(job))
        except Exception:  # the wait itself was lost: train it here rather than not at all
            found = None
        if found is None:
            self._start(job)
            return
        print(f"[ablate] {job.label}: taken from the store, where another run filed it", flush=True)
        self._reuse(job, found)

    def _track(self, job: Job, outcome: Outcome, reused: bool = False) -> None:
        for tracker in self.trackers:
            tracker.log_training(job.label, outcome, reused)
