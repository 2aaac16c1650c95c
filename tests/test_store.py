"""The store on its own, through real SQLite files: one filing per key however many processes file it at once,
claims that a dead holder cannot keep, query and lookup, and each bad store in one line."""

from __future__ import annotations

import math
import multiprocessing
import os
import subprocess
import sys
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from ablate.core.errors import UsageError
from ablate.store import SCHEMA_VERSION, Filing, Owner, RunLink, SQLStore, Use, import_cache, lookup, model_key, query
from ablate.store._sql import schema

CONTEXT = {"protocol": {"name": "digits", "epochs": 2}, "macro": "cifar-tiny", "split_seed": 0,
           "data": {"dataset": "digits", "data_dir": None, "splits": {"train": 10, "val": 4, "test": 4}},
           "code": "abc", "plugins": []}


def outcome(trial_id: str, config: str = "relu-dwconv-w0.5", seed: int = 0, top1: float = 50.0,
            network: str = "net-a", status: str = "completed", phase: str = "ablation") -> dict:
    row = {"kind": "candidate", "trial_id": trial_id, "name": config, "config": config, "network": network,
           "nonlinearity": config.split("-")[0], "spatial": config.split("-")[1], "width": 0.5, "status": status,
           "seed": seed, "phase": phase, "val_top1": top1, "test_top1": top1 - 1, "epochs": 2, "params": 1000,
           "macs": 5000, "train_seconds": 3.0}
    return {"row": row, "curves": [{"epoch": 1, "val_top1": top1 / 2}, {"epoch": 2, "val_top1": top1}],
            "predictions": {"val": "0110", "test": "1001"}}


def link(path, run: str, context=CONTEXT) -> RunLink:
    return RunLink(SQLStore(f"sqlite:///{path}"), str(path.parent / run), context)


def _file_from_process(url: str, run: str, barrier) -> bool:
    store = SQLStore(url)
    barrier.wait()
    return RunLink(store, run, CONTEXT).file(outcome("ablation-x-s0"))


def file_at_once(url: str, processes: int = 4) -> list[bool]:
    """One key filed by ``processes`` processes released together (runs /runs/r0 …): whether each filed it."""
    SQLStore(url)  # the tables exist before the race: the race is the filing's
    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(processes)
    with context.Pool(processes) as pool:
        return pool.starmap(_file_from_process, [(url, f"/runs/r{i}", barrier) for i in range(processes)])


def test_a_key_filed_by_many_processes_at_once_is_filed_once_and_each_use_is_kept(tmp_path):
    url = f"sqlite:///{tmp_path / 'ablate.db'}"
    filed = file_at_once(url)
    assert sorted(filed) == [False, False, False, True]  # exactly one filing, no error
    table = query(url)
    assert len(table) == 4 and table["key"].nunique() == 1 and sorted(table["run"]) == ["r0", "r1", "r2", "r3"]
    with sa.create_engine(url).connect() as conn:
        assert conn.execute(sa.text("select count(*) from ablate_models")).scalar() == 1


def test_a_filing_comes_back_whole_and_a_failure_is_not_filed(tmp_path):
    runs = link(tmp_path / "ablate.db", "A")
    assert runs.file(outcome("ablation-x-s0"))
    assert not runs.file(outcome("ablation-y-s0", network="net-b", status="failed"))
    found = runs.find("net-a", 0)
    assert found.outcome == outcome("ablation-x-s0") and found.trained_in == runs.run
    assert runs.find("net-b", 0) is None and runs.find("net-a", 1) is None
    other = {**CONTEXT, "protocol": {"name": "digits", "epochs": 3}}  # any protocol field is another key
    assert model_key(other, "net-a", 0) != runs.key("net-a", 0)
    assert model_key({**CONTEXT, "code": "edited"}, "net-a", 0) != runs.key("net-a", 0)


def test_a_claim_is_held_once_and_a_dead_or_silent_holder_loses_it(tmp_path):
    store = SQLStore(f"sqlite:///{tmp_path / 'ablate.db'}")
    mine, theirs = Owner("/runs/a"), Owner("/runs/b")
    assert store.claim("k", mine) and not store.claim("k", theirs) and store.claim("k", mine)
    assert store.renew(mine) == 1
    store.release("k", theirs)  # another's release leaves the claim alone
    assert store.holder("k").same(mine)
    store.release("k", mine)
    assert store.holder("k") is None and store.claim("k", theirs)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = Owner("/runs/c", pid=int(dead.stdout))
    assert store.claim("dead", gone) and gone.stale()
    assert store.claim("dead", mine)  # a claim whose process is gone is taken over at once
    elsewhere = Owner("/runs/d", host="another-host", heartbeat=time.time())
    assert not elsewhere.stale() and Owner("/runs/d", host="another-host", heartbeat=time.time() - 3600).stale()
    assert store.claim("far", elsewhere) and not store.claim("far", mine)
    with sa.create_engine(store._url).begin() as conn:  # the other host stopped renewing its claim an hour ago
        conn.execute(sa.text("update ablate_claims set heartbeat = :t where key = 'far'"), {"t": time.time() - 3600})
    assert store.claim("far", mine)


def test_query_filters_on_any_axis_and_lookup_pools_every_seed(tmp_path):
    path = tmp_path / "ablate.db"
    first, second = link(path, "first"), link(path, "second", {**CONTEXT, "split_seed": 1})
    for seed, top1 in ((0, 60.0), (1, 64.0), (2, 62.0)):
        first.file(outcome(f"ablation-relu-s{seed}", seed=seed, top1=top1))
        first.file(outcome(f"ablation-mult-s{seed}", "multiply-dwconv-w0.5", seed, top1 + 5, network="net-m"))
    second.file(outcome("ablation-relu-s1", seed=1, top1=66.0))
    reused = {**outcome("ablation-relu-s0", seed=0, top1=60.0), "reused_from": "first"}
    link(path, "third").file(reused)  # the same context as the first run's: its model, reused
    table = query(path)
    assert len(table) == 8 and set(table["run"]) == {"first", "second", "third"}
    assert len(query(path, nonlinearity="multiply")) == 3
    assert len(query(path, run="second")) == 1 and len(query(path, run=str(tmp_path / "second"))) == 1
    assert sorted(query(path, run=["second", "third"], seed=[0, 1])["reused_from"]) == ["", "first"]
    assert len(query(path, phase="confirm")) == 0 and len(query(path, protocol="digits", seed=2)) == 2
    with pytest.raises(UsageError, match="no column colour to filter on"):
        query(path, colour="red")
    networks = {"relu-dwconv-w0.5": "net-a", "multiply-dwconv-w0.5": "net-m"}

    def fingerprint(block, macro):
        return networks[str(block)]

    import ablate.models.fingerprint
    original = ablate.models.fingerprint.network_fingerprint
    ablate.models.fingerprint.network_fingerprint = fingerprint
    try:
        found = lookup("relu-dwconv-w0.5", protocol="digits", store=path)
        assert found.n == 4  # the first run's three seeds and the second's own; the third's reused one once
        assert found.mean == pytest.approx((59 + 63 + 61 + 65) / 4)
        assert found.interval[0] < found.mean < found.interval[1]
        assert found.per_seed == {0: 59.0, 1: 64.0, 2: 61.0} and found.costs["macs"] == 5000
        only = lookup("relu-dwconv-w0.5", protocol="digits", seeds=[2], store=path)
        assert only.n == 1 and math.isnan(only.interval[0])
        with pytest.raises(UsageError, match="holds no model of relu-dwconv-w0.5 under cifar10"):
            lookup("relu-dwconv-w0.5", protocol="cifar10", store=path)
        longer = link(path, "longer", {**CONTEXT, "protocol": {"name": "digits", "epochs": 3}})
        longer.file(outcome("ablation-relu-s0", seed=0))
        with pytest.raises(UsageError, match="models of 2 recipes"):
            lookup("relu-dwconv-w0.5", protocol="digits", store=path)
    finally:
        ablate.models.fingerprint.network_fingerprint = original


def test_each_bad_store_is_one_line_naming_the_fix(tmp_path):
    with pytest.raises(UsageError, match="no store at .*missing.db: run an ablation first"):
        query(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()  # a reader leaves no empty store behind
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(b"this is no database, it was cut short" * 100)
    with pytest.raises(UsageError, match=r"damaged.db is not a readable store .*move it aside \(mv "):
        SQLStore(f"sqlite:///{damaged}")
    newer = tmp_path / "newer.db"
    SQLStore(f"sqlite:///{newer}")
    with sa.create_engine(f"sqlite:///{newer}").begin() as conn:
        conn.execute(sa.insert(schema).values(version=SCHEMA_VERSION + 1, written_at=time.time()))
    script = f"from ablate.store import SQLStore; SQLStore('sqlite:///{newer}')"  # a process that has not opened it
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert f"written by a newer ablate (schema {SCHEMA_VERSION + 1}" in done.stderr and "upgrade ablate" in done.stderr
    foreign = tmp_path / "foreign.db"
    with sa.create_engine(f"sqlite:///{foreign}").begin() as conn:
        conn.execute(sa.text("create table ablate_models (id integer)"))
    with pytest.raises(UsageError, match="has a table ablate_models without the columns .* not an ablate store"):
        SQLStore(f"sqlite:///{foreign}")
    with pytest.raises(UsageError, match="cannot reach the store postgresql://nobody@127.0.0.1:1/none"):
        SQLStore("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(UsageError, match="cannot read the store address"):
        SQLStore("::not a url::")


def test_the_old_baseline_cache_is_filed_once_and_goes(tmp_path, capsys):
    from ablate.core.files import write_json

    cache = tmp_path / ".cache" / "baselines"
    write_json(cache / "0123abcd.json", outcome("baseline-ResNet50-s0"))
    (cache / "0123abcd.claim").write_text("{}")
    (cache / "broken.json").write_text("{")
    store = SQLStore(f"sqlite:///{tmp_path / 'ablate.db'}")
    assert import_cache(store, tmp_path) == 1 and not (tmp_path / ".cache").exists()
    assert "filed the 1 baselines" in capsys.readouterr().out
    assert import_cache(store, tmp_path) == 0
    kept = query(store)
    assert kept["run"].tolist() == [".cache"] and store.get("legacy-0123abcd").outcome == outcome(
        "baseline-ResNet50-s0")


def test_a_store_pickles_as_its_address(tmp_path):
    import pickle

    store = SQLStore(f"sqlite:///{tmp_path / 'ablate.db'}")
    runs = RunLink(store, "/runs/a", CONTEXT)
    runs.file(outcome("ablation-x-s0"))
    copy = pickle.loads(pickle.dumps(runs))
    assert copy.find("net-a", 0).outcome["row"]["trial_id"] == "ablation-x-s0"
    assert isinstance(pd.DataFrame(copy.store.uses()), pd.DataFrame) and os.getpid() > 0


def test_use_rows_replace_a_runs_earlier_row_of_a_trial(tmp_path):
    store = SQLStore(f"sqlite:///{tmp_path / 'ablate.db'}")
    first = outcome("ablation-x-s0")
    key = model_key(CONTEXT, "net-a", 0)
    store.file(Filing(key, CONTEXT, first, "/runs/a"), Use("/runs/a", "ablation-x-s0", key, first["row"]))
    again = {**first["row"], "phase": "confirm"}
    store.file(Filing(key, CONTEXT, first, "/runs/a"), Use("/runs/a", "ablation-x-s0", key, again))
    assert query(store)["phase"].tolist() == ["confirm"]


def test_the_query_command_prints_a_table_or_csv_and_refuses_a_bad_filter_in_one_line(tmp_path, capsys):
    import io

    from ablate import cli

    path = tmp_path / "ablate.db"
    runs = link(path, "first")
    for seed in (0, 1):
        runs.file(outcome(f"ablation-relu-s{seed}", seed=seed, top1=60.0 + seed))
        runs.file(outcome(f"ablation-mult-s{seed}", "multiply-dwconv-w0.5", seed, 70.0, network="net-m"))
    assert cli.main(["query", "--store", str(path), "nonlinearity=multiply", "seed=0,1"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].split()[:4] == ["run", "trial_id", "name", "phase"] and len(out.splitlines()) == 3
    assert "ablation-mult-s1" in out and "ablation-relu-s0" not in out and "2 rows (2 models)" in err
    assert cli.main(["query", "--store", str(path), "--csv", "width=0.5"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert len(table) == 4 and {"run_dir", "key", "trained_in", "val_top1"} <= set(table.columns)
    assert cli.main(["query", "--store", str(path), "--columns", "name,test_top1", "seed=1"]) == 0
    assert capsys.readouterr().out.split()[:2] == ["name", "test_top1"]
    assert cli.main(["query", "--store", str(path), "relu"]) == 2
    assert "'relu' is not a filter: write COLUMN=VALUE" in capsys.readouterr().err
    assert cli.main(["query", "--store", str(tmp_path / "none.db")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_process_killed_mid_filing_leaves_nothing_half_filed_and_no_lock(tmp_path):
    """A filing is one transaction: a process SIGKILLed inside it (the model's row written, its use not yet, the
    write lock held) leaves the store as it was, readable and writable at once."""
    import signal

    url = f"sqlite:///{tmp_path / 'ablate.db'}"
    runs = RunLink(SQLStore(url), "/runs/a", CONTEXT)
    key = runs.key("net-a", 0)
    script = f"""
import sys, time
import sqlalchemy as sa
from ablate.store import SQLStore
from ablate.store._sql import models
store = SQLStore({url!r})
with store._engine.begin() as conn:
    conn.execute(store._insert(models).values(key={key!r}, row="{{}}", context="{{}}"))
    print("inside", flush=True)
    time.sleep(120)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "inside"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert runs.find("net-a", 0) is None  # nothing of the killed filing
    assert runs.file(outcome("ablation-x-s0")) and runs.find("net-a", 0).outcome == outcome("ablation-x-s0")


def test_a_runs_tables_exported_from_the_store_are_its_records_tables(tmp_path):
    from ablate.results import load, load_curves
    from ablate.store import export_run
    from ablate.tune.record import RunRecord

    run_dir = tmp_path / "results" / "run"
    runs = link(tmp_path / "results" / "ablate.db", "run")
    record = RunRecord(run_dir, runs)
    for seed, top1 in ((0, 60.0), (1, 64.0)):
        record.file(outcome(f"ablation-relu-dwconv-w0.5-s{seed}", seed=seed, top1=top1))
        record.file(outcome(f"ablation-multiply-dwconv-w0.5-s{seed}", "multiply-dwconv-w0.5", seed, top1 + 3,
                            network="net-m"))
    record.write()
    export_run(runs.store, runs.run, tmp_path / "exported")
    for read in (load, lambda f: load(f, predictions=True), lambda f: load(f, summary=True), load_curves):
        ours, theirs = (read(f) for f in (run_dir, tmp_path / "exported"))
        key = [c for c in ("trial_id", "name", "split", "image", "epoch") if c in ours]
        pd.testing.assert_frame_equal(ours.sort_values(key).reset_index(drop=True),
                                      theirs.sort_values(key).reset_index(drop=True))
