"""End-to-end ablation runs through Ray Tune + Optuna on a tiny budget.

Each test has its own results folder (and so its own baseline cache); the in-process tests share one local Ray
(started once: ~6 s here), which the session fixture stops even when a test fails. Tests that start a driver run it
in its own process session and kill that whole session (driver, GCS, raylet, workers) on the way out.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import ray
import ray.cloudpickle
from conftest import tiny_space_text
from optuna.trial import TrialState

from ablate import cli
from ablate.core.pareto import pareto_mask
from ablate.protocols import load_protocol
from ablate.results import load
from ablate.space import load_space, parse_objectives
from ablate.store import open_store
from ablate.training import train
from ablate.tune import RunSettings, make_storage, run_ablation

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
EPOCHS = 2

TINY_SPACE = tiny_space_text("tiny")
NO_BASELINES = tiny_space_text("tiny", baselines="")

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this test module


def space_file(tmp_path, text=TINY_SPACE):
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    return load_space(path)


def settings(space, run_dir, **kw):
    defaults = dict(space=space, protocol=load_protocol("digits").with_overrides(epochs=EPOCHS), run_dir=run_dir,
                    trials=4, seed=0, dashboard=False, max_failures=1, confirm=0, design="search",
                    max_concurrent=1)
    return RunSettings(**{**defaults, **kw})


def study_of(run_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name=run_dir.name, storage=make_storage(None, run_dir))


@pytest.mark.timeout(300)
def test_end_to_end_on_a_tiny_budget(local_ray, tmp_path, capsys):
    run_dir = tmp_path / "results" / "e2e"
    outcome = run_ablation(settings(space_file(tmp_path), run_dir, scheduler="none", design="balanced"))
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
    for row in completed.itertuples():  # every completed row, paired with ResNet50 of its own seed
        reference = completed[(completed["name"] == "ResNet50") & (completed["seed"] == row.seed)]["val_top1"].item()
        assert math.isclose(row.delta_top1, row.val_top1 - reference), row.name
    curves = pd.read_parquet(run_dir / "curves.parquet")
    assert len(curves) == 7 * EPOCHS and set(curves["epoch"]) == {1, 2}
    assert (pd.read_csv(run_dir / "trials.csv")["trial_id"] == table["trial_id"]).all()
    meta = (run_dir / "run.json").read_text()
    for key in ('"torch"', '"timm"', '"optuna"', '"ray"', '"hardware"', '"protocol"', '"wall_seconds"'):
        assert key in meta
    assert len([t for t in study_of(run_dir).trials if t.state == TrialState.COMPLETE]) == 4
    assert "[ablate] trials 4/4 done" in capsys.readouterr().out
    assert len(outcome.table) == len(table)
    assert len(open_store(tmp_path / "results" / "ablate.db").uses({"kind": ["baseline"]})) == 3  # in the store
    # QLNet's continuous symmetry, measured on the trained weights: radial blocks keep their logits, ReLU ones do not
    assert set(completed["nonlinearity"]) == {"relu", "multiply", "hardball"}  # a balanced design has each
    assert (completed["symmetric"] == (completed["nonlinearity"] != "relu")).all(), completed[["name", "symmetry_gap"]]
    assert not table.loc[table["name"] == "ResNet50", "symmetric"].item()  # relu-conv3x3


def diverge_or_crash(config, protocol, **kwargs):
    """The candidates' maxpool blocks diverge for real (huge lr → non-finite loss); multiply-dwconv crashes, and so
    does the R50-hybrid baseline; the rest train (R50-max's block is relu-maxpool-w0.25, so the width keeps the
    baselines out of the divergence)."""
    if config.spatial == "maxpool" and config.width == 0.5:
        return train(config, protocol.with_overrides(lr=1e12), **kwargs)
    if str(config) in ("multiply-dwconv-w0.5", "relu-hybrid-w0.25"):
        raise RuntimeError(f"injected crash in {config}")
    return train(config, protocol, **kwargs)


@pytest.mark.timeout(300)
def test_failing_trials_and_a_crashed_baseline_are_rows_with_their_reason(local_ray, tmp_path):
    results = tmp_path / "results"
    run_ablation(settings(space_file(tmp_path), results / "failing", trials=6, sampler="grid", scheduler="none",
                          train_fn=diverge_or_crash))
    table = pd.read_parquet(results / "failing" / "trials.parquet").set_index("name")
    for name in ("relu-maxpool-w0.5", "multiply-maxpool-w0.5", "hardball-maxpool-w0.5"):
        assert table.loc[name, "status"] == "failed"
        assert table.loc[name, "reason"].startswith("non-finite loss at epoch")
    assert table.loc["multiply-dwconv-w0.5", "status"] == "failed"
    assert table.loc["multiply-dwconv-w0.5", "reason"] == "RuntimeError: injected crash in multiply-dwconv-w0.5"
    assert (table.loc[["relu-dwconv-w0.5", "hardball-dwconv-w0.5"], "status"] == "completed").all()
    assert table.loc["R50-hybrid", "status"] == "failed"
    assert table.loc["R50-hybrid", "reason"] == "RuntimeError: injected crash in relu-hybrid-w0.25"
    assert (table.loc[["ResNet50", "R50-max"], "status"] == "completed").all()
    stored = {use["row"]["name"] for use in open_store(results / "ablate.db").uses({"kind": ["baseline"]})}
    assert stored == {"ResNet50", "R50-max"}  # a failure is never stored
    study = study_of(results / "failing")
    states = sorted(t.state.name for t in study.trials if not t.user_attrs.get("duplicate"))
    assert states == ["COMPLETE"] * 2 + ["FAIL"] * 4


def stall_maxpool(config, protocol, **kwargs):
    """maxpool candidates learn nothing (lr 1e-6 keeps them near chance), so ASHA's first rung stops those the
    search proposes once the design's trials have set the bar; the others train normally."""
    if config.spatial == "maxpool":
        return train(config, protocol.with_overrides(lr=1e-6), **kwargs)
    return train(config, protocol, **kwargs)


@pytest.mark.timeout(300)
def test_asha_prunes_weak_search_trials_never_design_ones_and_the_report_lists_them(local_ray, tmp_path, capsys):
    run_dir = tmp_path / "results" / "asha"
    run_ablation(settings(space_file(tmp_path, NO_BASELINES), run_dir, trials=6, design="search", scheduler="asha",
                          max_concurrent=1, train_fn=stall_maxpool))
    table = pd.read_parquet(run_dir / "trials.parquet")
    design, search = table[table["phase"] == "design"], table[table["phase"] == "search"]
    assert len(design) == 3 and len(search) == 3  # TPE's start-up core of 6 trials is the balanced design
    assert (design["status"] == "completed").all()  # exempt from early stopping, stalled maxpool ones included
    pruned = table[table["status"] == "pruned"]
    # exactly the trials ASHA's rule stops: a search trial whose epoch-1 val top-1 is below the median of the epoch-1
    # values recorded before it (design trials record theirs and are never stopped); with one trial at a time they
    # reach epoch 1 in the order the study numbers them
    curves = pd.read_parquet(run_dir / "curves.parquet")
    first = curves[curves["epoch"] == 1].set_index("trial_id")["val_top1"]
    number = {f"{t.params['nonlinearity']}-{t.params['spatial']}-w0.5": t.number for t in study_of(run_dir).trials
              if not t.user_attrs.get("duplicate")}
    recorded, expected = [], set()
    for row in sorted(table.itertuples(), key=lambda r: number[r.name]):
        value = first[row.trial_id]
        if row.phase == "search" and recorded and value < np.nanpercentile(recorded, 50):
            expected.add(row.name)
        recorded.append(value)
    assert set(pruned["name"]) == expected, table[["trial_id", "name", "phase", "status", "val_top1"]]
    stalled = set(search.loc[search["spatial"] == "maxpool", "name"])
    assert stalled and stalled <= expected  # every stalled search trial is among them
    assert (pruned["epochs"] < EPOCHS).all() and pruned["test_top1"].isna().all()
    completed = table[table["status"] == "completed"]
    assert (completed["epochs"] == EPOCHS).all() and completed["test_top1"].notna().all()
    trials = {f"{t.params['nonlinearity']}-{t.params['spatial']}-w0.5": t for t in study_of(run_dir).trials
              if not t.user_attrs.get("duplicate")}
    assert {trials[name].state for name in pruned["name"]} == {TrialState.PRUNED}
    assert {trials[name].state for name in completed["name"]} == {TrialState.COMPLETE}
    for row in table.itertuples():  # every epoch's val top-1 in the study: dashboards draw the learning curves
        assert sorted(trials[row.name].intermediate_values) == list(range(1, row.epochs + 1))
    assert all(trials[name].user_attrs["pruned_by"].startswith("ASHA after epoch 1") for name in pruned["name"])

    capsys.readouterr()
    assert cli.main(["report", str(run_dir)]) == 0  # the CLI's report of this real run's table
    report = (run_dir / "report.md").read_text()
    unfinished = report.split("## Pruned and failed trials", 1)[1].split("##", 1)[0]
    for name in pruned["name"]:
        assert f"| {name} | candidate | pruned | 1 |" in unfinished


@pytest.mark.timeout(300)
def test_balanced_design_with_confirmation_seeds(local_ray, tmp_path):
    """A balanced design of 4 full-budget configs; the best one retrained under 2 fresh seeds, ResNet50 under the run
    seed and the same fresh seeds; every model's per-image evidence in predictions.parquet."""
    space = space_file(tmp_path, tiny_space_text("tiny", baselines="resnet50"))
    run_dir = tmp_path / "results" / "confirm"
    run_ablation(settings(space, run_dir, trials=4, design="balanced", confirm=1, seeds=2))
    table = pd.read_parquet(run_dir / "trials.parquet")
    design = table[(table["kind"] == "candidate") & (table["phase"] == "design")]
    assert len(design) == 4 and (design["status"] == "completed").all() and (design["seed"] == 0).all()
    assert design["nonlinearity"].value_counts().max() - design["nonlinearity"].value_counts().min() <= 1
    best = design.loc[design["val_top1"].idxmax(), "config"]
    confirm = table[(table["kind"] == "candidate") & (table["phase"] == "confirm")]
    assert list(confirm["config"]) == [best] * 2 and sorted(confirm["seed"]) == [1, 2]  # fresh: not the run's 0
    baselines = table[table["kind"] == "baseline"].sort_values("seed")
    assert list(baselines["seed"]) == [0, 1, 2] and list(baselines["phase"]) == ["design", "confirm", "confirm"]
    assert table["trial_id"].is_unique and (table["status"] == "completed").all()
    seeds = {row.seed: row.val_top1 for row in table[table["config"] == best].itertuples()}
    assert len(seeds) == 3  # the same block under three training seeds: three trainings, same data split
    curves = pd.read_parquet(run_dir / "curves.parquet")
    ids = table[table["config"] == best].set_index("seed")["trial_id"]
    first_loss = {s: curves[(curves["trial_id"] == t) & (curves["epoch"] == 1)]["train_loss"].item()
                  for s, t in ids.items()}
    assert len(set(first_loss.values())) == 3, first_loss  # seeds differ for real: init, order, augmentation
    meta = json.loads((run_dir / "run.json").read_text())
    assert (meta["design"], meta["confirm"], meta["seeds"]) == ("balanced", 1, 2)
    assert set(meta["data"]) == {"train", "val", "test"} and meta["data"]["val"] > 0
    # which val and test images every model got right, one row per model, split and image
    evidence = load(run_dir, predictions=True)
    assert set(evidence["trial_id"]) == set(table["trial_id"])
    sizes = evidence.groupby(["trial_id", "split"]).size().unstack()
    assert (sizes["val"] == meta["data"]["val"]).all() and (sizes["test"] == meta["data"]["test"]).all()
    hits = evidence[evidence["split"] == "test"].groupby("trial_id")["correct"].mean() * 100
    assert np.allclose(hits[table["trial_id"]].to_numpy(), table["test_top1"].to_numpy())
    summary = load(run_dir, summary=True).set_index("name")
    assert summary.loc[best, "evidence"] == "confirm" and summary.loc[best, "n_confirm"] == 2
    assert summary.loc[best, "test_top1_ci_low"] < summary.loc[best, "test_top1_mean"] < \
        summary.loc[best, "test_top1_ci_high"]


TWIN_SPACE = """\
name: twins
axes:
  nonlinearity:
    choices: [relu, multiply]
  spatial:
    choices: [maxpool, dwconv]
  width:
    choices: [0.25, 0.2501]
macro: cifar-tiny
baselines: [resnet50_max]
"""


@pytest.mark.timeout(300)
def test_a_design_with_twins_trains_each_network_once_and_the_report_counts_it_once(local_ray, tmp_path, capsys):
    """8 points but 4 networks (widths 0.25 and 0.2501 give the same channels), one of them R50-max's: the grid
    trains 3 candidates and the baseline, and the report's effects see 4 networks (1 residual df: not estimable)."""
    run_dir = tmp_path / "results" / "twins"
    run_ablation(settings(space_file(tmp_path, TWIN_SPACE), run_dir, design="grid", trials=8, scheduler="none"))
    table = pd.read_parquet(run_dir / "trials.parquet")
    candidates = table[table["kind"] == "candidate"]
    assert len(candidates) == 3 and candidates["network"].is_unique and (candidates["status"] == "completed").all()
    assert "relu-maxpool-w0.25" not in set(candidates["config"])  # R50-max's own network: the baseline trains it
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["aliases"]["relu-maxpool-w0.25"] == "R50-max" and len(meta["aliases"]) == 5
    assert "relu-dwconv-w0.2501 builds the same network as relu-dwconv-w0.25" in capsys.readouterr().out
    from ablate.report import build_report
    from ablate.report.data import load_run

    run = load_run(run_dir)
    assert run.effects.attrs["n_model"] == 4 and not run.effects["estimable"].any()
    assert run.stand_ins == ["R50-max"] and run.aliases["R50-max"] == ["relu-maxpool-w0.25", "relu-maxpool-w0.2501"]
    md = build_report(run_dir).markdown.read_text()
    assert "twins (one network under several names" in md and "`R50-max` = `relu-maxpool-w0.25`" in md


@pytest.mark.timeout(300)
@pytest.mark.parametrize("objectives,cost", [("top1,macs", "macs"), ("top1,latency", "trial_latency_ms")])
def test_multi_objective_gives_a_pareto_set(local_ray, tmp_path, objectives, cost):
    run_dir = tmp_path / "results" / "pareto"
    run_ablation(settings(space_file(tmp_path, NO_BASELINES), run_dir, sampler="nsga2",
                          objectives=parse_objectives(objectives)))
    table = pd.read_parquet(run_dir / "trials.parquet")
    done = table[(table["kind"] == "candidate") & (table["status"] == "completed")]
    assert len(done) == 4 and (done[cost] > 0).all()
    front = set(done.loc[pareto_mask(done, "val_top1", cost), "config"])
    study = study_of(run_dir)
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    values = {f"{t.params['nonlinearity']}-{t.params['spatial']}-w0.5": t.values for t in study.trials
              if t.state == TrialState.COMPLETE}
    assert all(values[row.config] == [row.val_top1, getattr(row, cost)] for row in done.itertuples())
    best = {f"{t.params['nonlinearity']}-{t.params['spatial']}-w0.5" for t in study.best_trials}
    assert front and best == front

