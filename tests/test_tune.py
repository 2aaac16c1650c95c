"""End-to-end ablation runs through Ray Tune + Optuna on a tiny budget (one shared local Ray)."""

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import ray
import ray.cloudpickle

from ablate.pareto import pareto_mask
from ablate.protocols import load_protocol
from ablate.space import load_space, parse_objectives
from ablate.training import train
from ablate.tune import RunSettings, make_storage, run_ablation

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent

TINY_SPACE = """\
name: tiny
axes:
  nonlinearity:
    choices: [relu, multiply, hardball]
  spatial:
    choices: [maxpool, dwconv]
fixed:
  width: 0.5
macro: cifar-tiny
"""

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this test module


@pytest.fixture(scope="session")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def results_root(tmp_path_factory):
    """One results folder for the session, so the baselines' cache is shared (and exercised) across runs."""
    return tmp_path_factory.mktemp("results")


@pytest.fixture(scope="session")
def tiny_space(tmp_path_factory):
    path = tmp_path_factory.mktemp("spaces") / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return load_space(path)


def settings(space, run_dir, **kw):
    defaults = dict(space=space, protocol=load_protocol("digits").with_overrides(epochs=2), run_dir=run_dir, trials=4,
                    seed=0, dashboard=False, max_failures=1)
    return RunSettings(**{**defaults, **kw})


def study_of(run_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name=run_dir.name, storage=make_storage(None, run_dir))


def test_end_to_end_on_a_tiny_budget(local_ray, results_root, tiny_space, capsys):
    run_dir = results_root / "e2e"
    outcome = run_ablation(settings(tiny_space, run_dir, scheduler="none"))
    table = pd.read_parquet(run_dir / "trials.parquet")
    assert (table["kind"] == "candidate").sum() == 4
    assert sorted(table.loc[table["kind"] == "baseline", "name"]) == ["R50-hybrid", "R50-max", "ResNet50"]
    assert table["trial_id"].is_unique
    candidates = table[table["kind"] == "candidate"]
    assert candidates["config"].is_unique  # the searcher does not train a block twice
    completed = table[table["status"] == "completed"]
    assert len(completed) == 7
    assert (completed["val_top1"] > 100 / 10).all()  # better than chance on 10 digits
    assert completed["test_top1"].between(0, 100).all()
    assert (completed["params"] > 0).all() and (completed["macs"] > 0).all()
    assert (completed["latency_ms"] > 0).all() and (completed["throughput"] > 0).all()
    resnet50 = table[table["name"] == "ResNet50"].iloc[0]
    assert resnet50["delta_top1"] == 0
    assert math.isclose(completed.iloc[0]["delta_top1"], completed.iloc[0]["val_top1"] - resnet50["val_top1"])
    curves = pd.read_parquet(run_dir / "curves.parquet")
    assert len(curves) == 7 * 2 and set(curves["epoch"]) == {1, 2}
    assert (pd.read_csv(run_dir / "trials.csv")["trial_id"] == table["trial_id"]).all()
    meta = (run_dir / "run.json").read_text()
    for key in ('"torch"', '"timm"', '"optuna"', '"ray"', '"hardware"', '"protocol"', '"wall_seconds"'):
        assert key in meta
    assert len([t for t in study_of(run_dir).trials if t.state == optuna.trial.TrialState.COMPLETE]) == 4
    assert "[ablate] trials 4/4 done" in capsys.readouterr().out
    assert outcome.table.equals(table) or len(outcome.table) == len(table)


def diverge_or_crash(config, protocol, **kwargs):
    """The candidates' maxpool blocks diverge for real (huge lr → non-finite loss); multiply-dwconv crashes; the
    rest train (R50-max's block is relu-maxpool-w0.25, so the width keeps the baselines out of it)."""
    if config.spatial == "maxpool" and config.width == 0.5:
        return train(config, protocol.with_overrides(lr=1e12), **kwargs)
    if str(config) == "multiply-dwconv-w0.5":
        raise RuntimeError("injected crash")
    return train(config, protocol, **kwargs)


def test_failing_trials_are_rows_with_their_reason(local_ray, results_root, tiny_space):
    run_dir = results_root / "failing"
    run_ablation(settings(tiny_space, run_dir, trials=6, sampler="grid", scheduler="none", train_fn=diverge_or_crash))
    table = pd.read_parquet(run_dir / "trials.parquet").set_index("name")
    for name in ("relu-maxpool-w0.5", "multiply-maxpool-w0.5", "hardball-maxpool-w0.5"):
        assert table.loc[name, "status"] == "failed"
        assert table.loc[name, "reason"].startswith("non-finite loss at epoch")
    assert table.loc["multiply-dwconv-w0.5", "status"] == "failed"
    assert "injected crash" in table.loc["multiply-dwconv-w0.5", "reason"]
    assert (table.loc[["relu-dwconv-w0.5", "hardball-dwconv-w0.5"], "status"] == "completed").all()
    assert (table[table["kind"] == "baseline"]["status"] == "completed").all()


def test_multi_objective_gives_a_pareto_set(local_ray, results_root, tiny_space):
    run_dir = results_root / "pareto"
    run_ablation(settings(tiny_space, run_dir, sampler="nsga2", objectives=parse_objectives("top1,macs")))
    table = pd.read_parquet(run_dir / "trials.parquet")
    done = table[(table["kind"] == "candidate") & (table["status"] == "completed")]
    front = set(done.loc[pareto_mask(done, "val_top1", "macs"), "config"])
    study = study_of(run_dir)
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    best = {f"{t.params['nonlinearity']}-{t.params['spatial']}-w0.5" for t in study.best_trials}
    assert front and best == front


def _run_cli(args, results_dir, **kw):
    env = {**os.environ, "ABLATE_RESULTS_DIR": str(results_dir), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(REPO / "run_ablation.py"), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_killed_driver_resumes_without_duplicates_or_losses(results_root, tiny_space):
    """SIGKILL the driver (and its local Ray) after the first completed trial; --resume finishes the study with
    every trial once, keeps what had completed, and the table has no duplicate. The results root is shared with
    the other tests, so the baselines come from the cache they filled (same protocol, epochs and seed)."""
    results_dir = results_root
    args = ["--space", str(tiny_space.path), "--trials", "4", "--epochs", "2", "--name", "killed", "--no-dashboard",
            "--no-report", "--max-concurrent", "1", "--scheduler", "none"]
    driver = _run_cli(args, results_dir, start_new_session=True)
    seen, deadline = [], time.time() + 240
    for line in driver.stdout:
        seen.append(line)
        if "trials 1/4 done" in line or time.time() > deadline:
            break
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
    driver.wait()
    assert any("trials 1/4 done" in line for line in seen), "".join(seen)[-2000:]
    study = optuna.load_study(study_name="killed", storage=make_storage(None, results_dir / "killed"))
    before = {t.number: t.values for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert len(before) >= 1

    resumed = _run_cli(["--resume", "--name", "killed", "--no-dashboard", "--no-report"], results_dir)
    out, _ = resumed.communicate(timeout=420)
    assert resumed.returncode == 0, out[-3000:]
    table = pd.read_parquet(results_dir / "killed" / "trials.parquet")
    candidates = table[table["kind"] == "candidate"]
    assert len(candidates) == 4 and candidates["trial_id"].is_unique and candidates["config"].is_unique
    assert (candidates["status"] == "completed").all()
    study = optuna.load_study(study_name="killed", storage=make_storage(None, results_dir / "killed"))
    after = {t.number: t.values for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert len(after) == 4 and all(after[n] == v for n, v in before.items())  # nothing lost, nothing re-run
