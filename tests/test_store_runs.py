"""Runs through the store, on the local Ray, with a trainer that counts: a second identical ablation trains nothing
and its tables hold the same rows and numbers, reused rows naming the run they came from; two runs sharing one
store train a model once between them; a wait for another run's training hands the training back when that run's
claim goes without a filing."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import ray.cloudpickle
from conftest import tiny_space_text

from ablate.core.errors import UsageError
from ablate.protocols import load_protocol
from ablate.results import load
from ablate.space import load_space
from ablate.store import Owner, SQLStore, lookup, query
from ablate.training import train
from ablate.tune import RunSettings, run_ablation
from ablate.tune.claims import wait_for_model
from ablate.tune.record import RunRecord

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this test module
NUMBERS = ["trial_id", "kind", "name", "config", "seed", "phase", "status", "epochs", "val_top1", "val_top5",
           "test_top1", "params", "macs", "train_seconds"]


@dataclass(frozen=True)
class CountingTrainer:
    """``ablate.training.train`` that leaves one file per call in ``marks`` (config and seed in its name)."""

    marks: str

    def __call__(self, config, protocol, **kw):
        Path(self.marks, f"{config}-s{kw.get('seed')}-{uuid.uuid4().hex}").touch()
        return train(config, protocol, **kw)


def ablation(tmp_path: Path, run: str, **kw) -> RunSettings:
    """The tiny space's ablation around relu-dwconv (relu-maxpool, multiply-dwconv, hardball-dwconv) and ResNet50,
    each under 2 seeds, 1 epoch of digits: 10 trainings."""
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_space_text("tiny", baselines="resnet50"))
    space = dataclasses.replace(load_space(path), reference={"nonlinearity": "relu", "spatial": "dwconv"})
    defaults = dict(space=space, protocol=load_protocol("digits").with_overrides(epochs=1),
                    run_dir=tmp_path / "results" / run, seed=0, dashboard=False, max_failures=1, design="ablation",
                    seeds=2, trackers=())
    return RunSettings(**{**defaults, **kw})


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_second_identical_run_trains_nothing_and_its_tables_are_the_firsts(local_ray, tmp_path, capsys):
    marks = tmp_path / "marks"
    marks.mkdir()
    trainer = CountingTrainer(str(marks))
    first = run_ablation(ablation(tmp_path, "first", train_fn=trainer)).table
    assert "ablate-claims" not in [t.name for t in threading.enumerate()]  # the claims' heartbeat ends with the run
    trained = len(list(marks.iterdir()))
    assert trained == len(first) == 10 and (first["status"] == "completed").all()
    capsys.readouterr()
    second = run_ablation(ablation(tmp_path, "second", train_fn=trainer)).table
    assert len(list(marks.iterdir())) == trained  # nothing trained again
    assert "10 of 10 trainings taken from the store" in capsys.readouterr().out
    pd.testing.assert_frame_equal(first.sort_values("trial_id")[NUMBERS].reset_index(drop=True),
                                  second.sort_values("trial_id")[NUMBERS].reset_index(drop=True))
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "second" / "records").glob("*.json")]
    assert len(records) == 10 and {r["reused_from"] for r in records} == {"first"}
    (tmp_path / "results" / "second" / "trials.parquet").unlink()  # the tables are a view of the record
    RunRecord(tmp_path / "results" / "second").write()
    pd.testing.assert_frame_equal(load(tmp_path / "results" / "second"), second)
    evidence = [load(tmp_path / "results" / run, predictions=True).sort_values(["trial_id", "split", "image"])
                ["correct"].tolist() for run in ("first", "second")]
    assert evidence[0] == evidence[1] and len(evidence[0]) > 600  # the per-image hits came back too
    store = tmp_path / "results" / "ablate.db"
    table = query(store)
    assert len(table) == 20 and table["key"].nunique() == 10 and set(table["run"]) == {"first", "second"}
    assert (query(store, run="second")["reused_from"] == "first").all()
    assert len(query(store, nonlinearity="multiply", seed=1)) == 2
    found = lookup("relu-dwconv-w0.5", protocol="digits", store=store)
    reference = first[first["config"] == "relu-dwconv-w0.5"]
    assert found.n == 2 and found.mean == pytest.approx(reference["test_top1"].mean())
    assert found.per_seed == pytest.approx(dict(zip(reference["seed"], reference["test_top1"])))
    # one more seed: only its 5 models (4 configs and the baseline under seed 2) are trained
    more = run_ablation(ablation(tmp_path, "more", train_fn=trainer, seeds=3)).table
    assert len(list(marks.iterdir())) == trained + 5 and len(more) == 15
    assert sum(p.name.rsplit("-", 1)[0].endswith("-s2") for p in marks.iterdir()) == 5
    trained += 5
    # another recipe (2 epochs) is other models: trained
    run_ablation(ablation(tmp_path, "longer", train_fn=trainer, protocol=load_protocol("digits")
                          .with_overrides(epochs=2), seeds=2))
    assert len(list(marks.iterdir())) == trained + 10
    # a store damaged on disk: one line naming it and the fix, before anything trains or any run folder is made
    store = tmp_path / "results" / "ablate.db"
    SQLStore(f"sqlite:///{store}").close()  # this process's pooled connections would still see the file as it was
    for suffix in ("-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    store.write_bytes(b"\0garbage" * 512)
    with pytest.raises(UsageError, match=r"ablate.db is not a readable store .* move it aside"):
        run_ablation(ablation(tmp_path, "after-damage", train_fn=trainer))
    assert len(list(marks.iterdir())) == trained + 10 and not (tmp_path / "results" / "after-damage").exists()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_runs_sharing_a_store_train_a_model_once(local_ray, tmp_path, capsys):
    """Run A claims the baseline and trains it; run B, started while A trains, waits for A's filing (a Ray task
    with no CPU) and files it without training: B's baseline folder never gets a checkpoint."""
    from ablate.store import RunLink, open_store
    from ablate.tune.jobs import JobRunner, baseline_jobs, store_context

    runners, jobs = [], []
    for name in ("a", "b"):
        settings = ablation(tmp_path, name, design="balanced", trials=2, seeds=1)
        settings.run_dir.mkdir(parents=True)
        link = RunLink(open_store(settings.store_url), str(settings.run_dir), store_context(settings, {"train": 1}))
        runners.append(JobRunner(settings, link))
        jobs.append(baseline_jobs(settings))
    a, b = runners
    a.submit(jobs[0], {"cpu": 1, "gpu": 0})
    key = a.key(jobs[0][0])
    assert a.link.store.holder(key).same(a.owner) and a.link.store.get(key) is None
    b.submit(jobs[1], {"cpu": 1, "gpu": 0})
    assert b.waiting == set(jobs[1]) and "run a on" in capsys.readouterr().out
    a.collect(wait=True)
    assert a.link.store.get(key) is not None and a.link.store.holder(key) is None  # filed, then released
    b.collect(wait=True)
    assert not b.waiting and not b.pending and "taken from the store" in capsys.readouterr().out
    ours, theirs = (r.record.outcomes()[jobs[0][0].trial_id] for r in runners)
    assert theirs["row"] == ours["row"] and theirs["reused_from"] == "a" and not ours.get("reused_from")
    assert not list((tmp_path / "results" / "b").rglob("checkpoint.pt"))  # B trained nothing
    assert list((tmp_path / "results" / "a").rglob("checkpoint.pt"))
    uses = query(a.link.store)
    assert sorted(uses["run"]) == ["a"] * len(jobs[0]) + ["b"] * len(jobs[1]) and uses["key"].nunique() == len(jobs[0])


def test_a_wait_ends_with_the_filing_or_when_the_claim_goes_without_one(tmp_path):
    from test_store import CONTEXT, outcome

    from ablate.store import RunLink

    store = SQLStore(f"sqlite:///{tmp_path / 'ablate.db'}")
    runs = RunLink(store, "/runs/a", CONTEXT)
    key, holder = runs.key("net-a", 0), Owner("/runs/a")
    assert store.claim(key, holder)
    got = {}
    waiter = threading.Thread(target=lambda: got.update(found=wait_for_model(store, key, 0.05)))
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive()  # still waiting: nothing filed, the claim is held
    runs.file(outcome("ablation-x-s0"))
    store.release(key, holder)
    waiter.join(10)
    assert got["found"].outcome["row"]["trial_id"] == "ablation-x-s0"
    other = runs.key("net-b", 0)
    assert store.claim(other, holder)
    store.release(other, holder)  # released on failure, with no filing: the waiter hands the training back
    assert wait_for_model(store, other, 0.05) is None
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert store.claim(other, Owner("/runs/c", pid=int(dead.stdout)))
    assert wait_for_model(store, other, 0.05) is None and store.claim(other, holder)  # a dead holder's is stale


def test_a_drivers_heartbeat_keeps_its_claims_fresh_and_stops_once_it_holds_none(tmp_path):
    import sqlalchemy as sa

    from ablate.tune.claims import Heartbeat

    store = SQLStore(f"sqlite:///{tmp_path / 'ablate.db'}")
    owner = Owner("/runs/a")
    assert store.claim("k", owner)
    with sa.create_engine(store._url).begin() as conn:  # as if the claim had not been renewed for an hour
        conn.execute(sa.text("update ablate_claims set heartbeat = :t"), {"t": time.time() - 3600})
    assert store.holder("k").stale(lease_s=600)
    beat = Heartbeat(store, owner, every_s=0.05)
    beat.start()
    deadline = time.time() + 10
    while store.holder("k").stale(lease_s=600) and time.time() < deadline:
        time.sleep(0.05)
    assert not store.holder("k").stale(lease_s=600)  # renewed
    store.release("k", owner)
    beat._thread.join(10)
    assert not beat._thread.is_alive()  # nothing left to renew: the thread ended by itself
