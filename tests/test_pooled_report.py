"""``run_ablation.py report results/A results/B``: ablation runs of one experiment reported as one — the union of
their models in one Holm family, a model two runs both trained counted once, the seeds of different split seeds
kept apart — and anything that is not one experiment refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import cli_error
from simulated_runs import ablation_meta, simulate_ablation

from ablate import cli
from ablate.core.schema import VerdictKind
from ablate.report.data import load_run
from ablate.report.pooled import SEED_STRIDE, pool_runs
from ablate.results import write_tables


def _write(folder, trials, predictions, meta):
    folder.mkdir(parents=True)
    ids = set(trials["trial_id"])
    write_tables(folder, trials.to_dict("records"), pd.DataFrame(), predictions[predictions["trial_id"].isin(ids)])
    (folder / "run.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture(scope="module")
def ten_seeds():
    """One simulated experiment of 10 training seeds (the same test images for all): runs are slices of it."""
    return simulate_ablation(np.random.default_rng(11), seeds=10)


def _slice(ten_seeds, seeds):
    trials, predictions = ten_seeds
    part = trials[trials["seed"].isin(seeds)]
    return part, predictions[predictions["trial_id"].isin(part["trial_id"])]


def test_two_runs_pool_into_one_family_that_detects_smaller_differences(tmp_path, ten_seeds, capsys):
    """Run A trained seeds 0–4, run B seeds 4–8 under the same split seed: seed 4 is one model each, counted
    once; the pooled family has the same comparisons, each on 9 seeds a side, with a smaller detectable
    difference than A's on 5."""
    a = _write(tmp_path / "A", *_slice(ten_seeds, range(0, 5)), ablation_meta(seeds=5))
    b = _write(tmp_path / "B", *_slice(ten_seeds, range(4, 9)), ablation_meta(seeds=5))
    assert cli.main(["report", str(a), str(b), "--out", str(tmp_path / "AB")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pooled 2 runs: A (55 models), B (55 models) → 99 models, 11 trained by two runs counted "
                          "once"), out
    pooled, alone = load_run(tmp_path / "AB"), load_run(a)
    assert len(pooled.completed) == 99 and pooled.summary["n"].eq(9).all()
    rows = pooled.verdicts[pooled.verdicts["kind"] == VerdictKind.ABLATION].set_index("a")
    solo = alone.verdicts[alone.verdicts["kind"] == VerdictKind.ABLATION].set_index("a")
    assert set(rows.index) == set(solo.index) and len(rows) == 7
    assert (rows["detectable"] < solo.loc[rows.index, "detectable"]).all(), (rows["detectable"], solo["detectable"])
    assert len(pooled.verdicts) == len(alone.verdicts)  # one family: the same comparisons, more evidence each
    text = (tmp_path / "AB" / "report.md").read_text()
    assert "Pooled: 2 runs of one experiment" in text and "11 models trained by two runs" in text


def test_runs_of_different_split_seeds_keep_their_seeds_apart(tmp_path, ten_seeds):
    """Runs under split seeds 0 and 1 trained on different train/val splits: both have a training seed 0, and the
    pooled table keeps them as two models (the second split seed's seeds shown + 1000)."""
    a = _write(tmp_path / "A", *_slice(ten_seeds, range(0, 3)), ablation_meta(seeds=3))
    trials, predictions = _slice(ten_seeds, range(3, 6))
    trials, predictions = trials.assign(seed=trials["seed"] - 3), predictions.assign(seed=predictions["seed"] - 3)
    b = _write(tmp_path / "B", trials, predictions, {**ablation_meta(seeds=3), "seed": 1})
    pooled = pool_runs([a, b], tmp_path / "AB")
    assert pooled.models == 66 and pooled.duplicates == 0
    table = pd.read_parquet(tmp_path / "AB" / "trials.parquet")
    assert sorted(table["seed"].unique()) == [0, 1, 2, SEED_STRIDE, SEED_STRIDE + 1, SEED_STRIDE + 2]
    assert table["trial_id"].is_unique and set(table["run"]) == {"A", "B"}
    hits = pd.read_parquet(tmp_path / "AB" / "predictions.parquet")
    assert set(hits["trial_id"]) == set(table["trial_id"])


@pytest.mark.parametrize("change,message", [
    ({"protocol": {"name": "digits", "dataset": "digits", "epochs": 3}}, "differ in their protocol"),
    ({"data": {"train": 1, "val": 2, "test": 3}}, "differ in their data split sizes"),
    ({"reference": {"nonlinearity": "relu", "spatial": "dwconv", "width": 1.0}}, "differ in their reference block"),
    ({"design": "grid"}, "is a 'grid' run: only ablation runs pool"),
])
def test_runs_that_are_not_one_experiment_are_refused_in_one_line(tmp_path, ten_seeds, capsys, change, message):
    a = _write(tmp_path / "A", *_slice(ten_seeds, range(0, 3)), ablation_meta(seeds=3))
    b = _write(tmp_path / "B", *_slice(ten_seeds, range(3, 6)), {**ablation_meta(seeds=3), **change})
    assert message in cli_error(capsys, "report", str(a), str(b))
    assert not list(tmp_path.glob("pooled-*"))  # nothing left behind


def test_one_run_listed_twice_or_out_with_one_run_is_a_usage_error(tmp_path, ten_seeds, capsys):
    a = _write(tmp_path / "A", *_slice(ten_seeds, range(0, 3)), ablation_meta(seeds=3))
    assert "a run is listed twice" in cli_error(capsys, "report", str(a), str(a))
    assert "--out is for several runs" in cli_error(capsys, "report", str(a), "--out", str(tmp_path / "x"))


def test_a_study_is_reported_from_the_store_by_its_name(tmp_path, ten_seeds, capsys, results_dir):
    """``run --study NAME`` files the run under the study (run.json, and the store's record of the run);
    ``report --study NAME`` pools the study's runs the store names, into results/study-NAME."""
    from ablate.cli.parser import build_parser, parse
    from ablate.cli.run import settings_from_args
    from ablate.store import SQLStore
    from ablate.tune import RunSettings

    args = parse(build_parser(), ["run", "--space", "qlblock", "--study", "twist-vs-dwconv"])
    settings = settings_from_args(args, results_dir, "run")
    assert settings.study == "twist-vs-dwconv" and settings.to_json()["study"] == "twist-vs-dwconv"
    assert RunSettings.from_json(settings.to_json(), settings.run_dir).study == "twist-vs-dwconv"  # --resume
    assert "--study 'a/b' must be letters" in cli_error(capsys, "--study", "a/b")

    store = SQLStore(f"sqlite:///{results_dir / 'ablate.db'}")
    for name, seeds, study in (("A", range(0, 5), "s"), ("B", range(4, 9), "s"), ("C", range(9, 10), "other")):
        meta = {**ablation_meta(seeds=len(seeds)), "study": study}
        folder = _write(results_dir / name, *_slice(ten_seeds, seeds), meta)
        store.register_run(str(folder), name, meta)
    assert cli.main(["report", "--study", "s"]) == 0
    assert capsys.readouterr().out.startswith("pooled 2 runs: A (55 models), B (55 models) → 99 models")
    assert (results_dir / "study-s" / "report.md").is_file() and len(load_run(results_dir / "study-s").completed) == 99
    assert "no run of study 'nope' in the store sqlite:///" in cli_error(capsys, "report", "--study", "nope")
    assert "it holds other, s" in cli_error(capsys, "report", "--study", "nope")
    assert "pass it, or run folders, not both" in cli_error(capsys, "report", str(results_dir / "A"), "--study", "s")
    assert "name a run folder" in cli_error(capsys, "report")
    (results_dir / "B").rename(results_dir / "B-moved")
    assert "run B of study 's' is gone from" in cli_error(capsys, "report", "--study", "s")
