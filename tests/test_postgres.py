"""``--storage postgresql://…`` against a real PostgreSQL server: a throwaway one on a loopback port (its own data
folder, stopped and removed even on failure), a small ablation, its driver killed mid-run and resumed; the study
and the table must agree. Outside CI the test skips in one line when no server binaries are installed; CI
(``.ci/run``) installs them from Debian's packages."""

from __future__ import annotations

import subprocess
import time

import optuna
import pandas as pd
import pytest
from conftest import epochs_logged, kill_when, one_trial_done_and_the_next_mid_way, spawn_cli, tiny_space_text
from optuna.trial import TrialState

from ablate.tune import make_storage

pytestmark = pytest.mark.slow
EPOCHS = 2


@pytest.mark.timeout(480)
def test_a_killed_run_on_postgresql_resumes_with_study_and_table_in_agreement(postgres, tmp_path, spawn):
    results_dir = tmp_path / "results"
    space = tmp_path / "tiny.yaml"
    space.write_text(tiny_space_text("tiny", baselines=""))
    args = ["--space", str(space), "--trials", "4", "--epochs", str(EPOCHS), "--name", "pg", "--no-dashboard",
            "--no-report", "--max-concurrent", "1", "--scheduler", "none", "--design", "search", "--confirm", "0",
            "--storage", postgres]
    run_dir = results_dir / "pg"
    kill_when(spawn_cli(spawn, results_dir, *args), run_dir, one_trial_done_and_the_next_mid_way)
    resumed = spawn_cli(spawn, results_dir, "--resume", "--name", "pg", "--no-dashboard", "--no-report")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    study = optuna.load_study(study_name="pg", storage=make_storage(postgres, run_dir))
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    complete = {t.params["nonlinearity"] + "-" + t.params["spatial"]: t for t in study.trials
                if t.state == TrialState.COMPLETE}
    table = pd.read_parquet(run_dir / "trials.parquet")
    done = table[(table["kind"] == "candidate") & (table["status"] == "completed")]
    assert len(complete) == len(done) == 4
    for row in done.itertuples():  # the study and the table hold the same finished trials and numbers
        trial = complete[f"{row.nonlinearity}-{row.spatial}"]
        assert trial.value == pytest.approx(row.val_top1)
        assert sorted(trial.intermediate_values) == list(range(1, EPOCHS + 1))
    assert all(epochs == [1, 2] for epochs in epochs_logged(run_dir).values())


# --- the study store (ablate.store) on the same throwaway server ------------------------------------------------


def test_the_store_on_postgresql_files_a_key_once_from_many_processes_and_refuses_a_newer_schema(postgres):
    import sys

    import sqlalchemy as sa
    from test_store import file_at_once

    from ablate.store import SCHEMA_VERSION, Owner, SQLStore, query

    filed = file_at_once(postgres)
    assert sorted(filed) == [False, False, False, True]  # exactly one filing, no error
    table = query(postgres)
    assert len(table) == 4 and table["key"].nunique() == 1
    store = SQLStore(postgres)
    mine, theirs = Owner("/runs/a"), Owner("/runs/b")
    assert store.claim("k", mine) and not store.claim("k", theirs) and store.renew(mine) == 1
    store.release("k", mine)
    assert store.claim("k", theirs)
    engine = sa.create_engine(postgres)
    with engine.begin() as conn:
        conn.execute(sa.text("insert into ablate_schema (version, written_at) values (:v, :t)"),
                     {"v": SCHEMA_VERSION + 1, "t": time.time()})
    engine.dispose()
    done = subprocess.run([sys.executable, "-c", f"from ablate.store import SQLStore; SQLStore({postgres!r})"],
                          capture_output=True, text=True)
    assert f"written by a newer ablate (schema {SCHEMA_VERSION + 1}" in done.stderr


@pytest.mark.timeout(480)
def test_two_ablations_at_once_sharing_a_postgresql_store_train_each_model_once(postgres, tmp_path, spawn):
    """Two identical runs started together, as two drivers with Ray's of their own, one store: both complete,
    every model is filed once, and between them each one was trained once (the other waited for it, or found it)."""
    from ablate.store import query

    results_dir = tmp_path / "results"
    space = tmp_path / "tiny.yaml"
    space.write_text(tiny_space_text("tiny", baselines="resnet50") + "reference: {nonlinearity: relu, spatial: "
                                                                       "dwconv}\n")
    runs = []
    for name in ("a", "b"):
        args = ["--space", str(space), "--design", "ablation", "--seeds", "2", "--epochs", "1", "--name", name,
                "--no-dashboard", "--no-report", "--max-concurrent", "1", "--tracker", "none", "--store", postgres]
        runs.append(spawn_cli(spawn, results_dir, *args))
        deadline = time.time() + 240  # b starts once a's Ray is up (two Rays starting at once may race for ports)
        while name == "a" and not (results_dir / "a" / "run.json").exists() and time.time() < deadline:
            assert runs[0].poll() is None, runs[0].communicate()[0][-3000:]
            time.sleep(1)
    for proc in runs:
        out, _ = proc.communicate(timeout=420)
        assert proc.returncode == 0, out[-3000:]
    table = query(postgres)
    assert sorted(set(table["run"])) == ["a", "b"] and len(table) == 20
    assert table["key"].nunique() == 10  # no key filed twice
    trained = table[table["reused_from"] == ""]
    assert len(trained) == 10 and trained["key"].is_unique  # each model trained once, by one of the two runs
    for name in ("a", "b"):
        assert len(pd.read_parquet(results_dir / name / "trials.parquet")) == 10
