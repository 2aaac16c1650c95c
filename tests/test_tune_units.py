"""The orchestration's decisions, one at a time and without a Ray cluster: trial status, de-duplication,
study reconciliation after a kill, error summaries, the baseline cache key and Δtop-1 without a reference."""

import math
import shutil
from pathlib import Path

import optuna
import pytest
from conftest import tiny_space_text
from optuna.trial import TrialState

import ablate
from ablate.protocols import load_protocol
from ablate.results import trials_frame
from ablate.space import load_space, parse_objectives
from ablate.tune import (
    AblationSearch,
    RunSettings,
    baseline_cache_key,
    classify,
    code_version,
    error_summary,
    make_storage,
    repair_study,
)

SPACE = tiny_space_text("units", baselines="")


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "units.yaml"
    path.write_text(SPACE)
    return load_space(path)


@pytest.mark.parametrize("tune_status,result,expected", [
    ("TERMINATED", {"epoch": 3}, "completed"),
    ("TERMINATED", {"epoch": 1}, "pruned"),         # stopped early by ASHA
    ("TERMINATED", {}, "pruned"),                   # stopped before its first report
    ("TERMINATED", {"epoch": 1, "status": "failed"}, "failed"),  # non-finite loss is reported, not raised
    ("ERROR", {"epoch": 3}, "failed"),
    ("RUNNING", {"epoch": 1}, "running"),
    ("PENDING", {}, "pending"),
])
def test_classify(tune_status, result, expected):
    assert classify(tune_status, result, epochs=3) == expected


def axes_of(config):
    """A suggested config without the ``phase`` the searcher adds for the scheduler."""
    return {k: v for k, v in config.items() if k != "phase"}


def test_design_points_come_first_marked_design_then_the_sampler_searches(space):
    design = [{"nonlinearity": "hardball", "spatial": "dwconv"}, {"nonlinearity": "relu", "spatial": "maxpool"}]
    searcher = AblationSearch(2, space.grid_points(), design, space=space, metric="val_top1",
                              mode="max", sampler=optuna.samplers.RandomSampler(seed=0), seed=0, study_name="design")
    configs = [searcher.suggest(f"t{i}") for i in range(4)]
    assert [axes_of(c) for c in configs[:2]] == design and [c["phase"] for c in configs[:2]] == ["design"] * 2
    assert [c["phase"] for c in configs[2:]] == ["search"] * 2
    assert len({tuple(sorted(axes_of(c).items())) for c in configs}) == 4


class OnePoint(optuna.samplers.BaseSampler):
    """A sampler that proposes the first choice of every parameter, always: every proposal after the first repeats."""

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, name, distribution):
        return distribution.choices[0]


def test_a_repeated_proposal_is_failed_as_duplicate_and_replaced_by_an_unseen_block(space):
    searcher = AblationSearch(2, space.grid_points(), space=space, metric="val_top1", mode="max",
                              sampler=OnePoint(), seed=0, study_name="dedupe")
    configs = [axes_of(searcher.suggest(f"t{i}")) for i in range(space.size)]
    keys = {tuple(sorted(c.items())) for c in configs}
    assert len(keys) == space.size  # every block exactly once, though the sampler wanted the same one each time
    assert configs[0] == {"nonlinearity": "relu", "spatial": "maxpool"}
    study = searcher.study
    duplicates = [t for t in study.trials if t.user_attrs.get("duplicate")]
    assert len(duplicates) == space.size - 1
    assert all(t.state == TrialState.FAIL and t.params == configs[0] for t in duplicates)
    running = [t for t in study.trials if t.state == TrialState.RUNNING]
    assert sorted(tuple(sorted(t.params.items())) for t in running) == sorted(keys)


def test_a_restored_searcher_takes_back_the_trials_its_snapshot_missed(space, tmp_path):
    """The driver was killed after the searcher's last snapshot but after it had asked for one more trial."""
    def searcher():
        return AblationSearch(2, space.grid_points(), space=space, metric="val_top1", mode="max",
                              sampler=optuna.samplers.RandomSampler(seed=0), seed=0, study_name="restored",
                              storage=make_storage(None, tmp_path))

    before = searcher()
    first = before.suggest("t0")
    before.save(str(tmp_path / "snapshot.pkl"))
    lost = before.suggest("t1")  # Ray's snapshot never saw this one

    after = searcher()
    after.restore(str(tmp_path / "snapshot.pkl"))
    assert axes_of(after.suggest("t2")) == axes_of(lost)  # the lost block comes back first, to resume its checkpoint
    assert axes_of(after.suggest("t3")) not in (axes_of(first), axes_of(lost))
    trials = [t for t in optuna.load_study(study_name="restored", storage=make_storage(None, tmp_path)).trials
              if not t.user_attrs.get("duplicate")]
    assert [t.state for t in trials] == [TrialState.RUNNING, TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING]
    assert trials[1].user_attrs["interrupted"] and trials[1].params == axes_of(lost)


def _settings(space, tmp_path, objectives="top1"):
    return RunSettings(space=space, protocol=load_protocol("digits"), run_dir=tmp_path, dashboard=False, trials=4,
                       objectives=parse_objectives(objectives))


def test_the_repair_fails_what_a_killed_driver_left_running_and_trains_each_unfinished_block_again(space, tmp_path):
    storage = make_storage(None, tmp_path)
    study = optuna.create_study(study_name="killed", storage=storage, directions=["maximize", "minimize"])
    distributions = {a.name: optuna.distributions.CategoricalDistribution(list(a.choices)) for a in space.axes}

    def ask(nonlinearity, spatial):
        study.enqueue_trial({"nonlinearity": nonlinearity, "spatial": spatial})
        return study.ask(distributions)

    study.tell(ask("relu", "dwconv"), [91.0, 2e6])
    orphans = {f"{n}-{s}": ask(n, s).number
               for n, s in (("relu", "dwconv"), ("multiply", "dwconv"), ("hardball", "maxpool"),
                            ("multiply", "maxpool"), ("multiply", "maxpool"))}
    driven = ask("relu", "maxpool").number  # the resumed searcher still drives this one

    again = repair_study(study, storage, space, known={driven})
    # every block no trial finished, once; relu-dwconv already has its outcome
    assert again == [{"nonlinearity": "multiply", "spatial": "dwconv"},
                     {"nonlinearity": "hardball", "spatial": "maxpool"},
                     {"nonlinearity": "multiply", "spatial": "maxpool"}]
    trials = {t.number: t for t in optuna.load_study(study_name="killed", storage=storage).trials}
    assert [t.number for t in trials.values() if t.state == TrialState.RUNNING] == [driven]
    for number in orphans.values():
        assert trials[number].state == TrialState.FAIL and trials[number].user_attrs["interrupted"]
    assert len([t for t in trials.values() if t.state == TrialState.COMPLETE]) == 1
    assert repair_study(study, storage, space, known={driven}) == []


class FakeRayTaskError(Exception):
    """Shaped like Ray's task error: a traceback as its text, the original exception as ``cause``."""

    def __init__(self, cause):
        super().__init__("ray::train_baseline() (pid=1, ip=127.0.0.1)\nTraceback (most recent call last):\n  ...\n"
                         f"RuntimeError: {cause}")
        self.cause = cause


def test_error_summary_gives_the_original_error_first_line():
    original = RuntimeError("injected crash\nwith a second line")
    assert error_summary(FakeRayTaskError(original)) == "RuntimeError: injected crash"
    assert error_summary(ValueError("bad width")) == "ValueError: bad width"
    assert error_summary(KeyError()) == "KeyError"


def test_baseline_cache_key_changes_with_protocol_seed_data_and_code(space, tmp_path, monkeypatch):
    settings = _settings(space, tmp_path)
    key = baseline_cache_key(settings, "ResNet50")
    assert key == baseline_cache_key(settings, "ResNet50")
    assert key != baseline_cache_key(settings, "R50-max")
    assert key != baseline_cache_key(RunSettings(**{**vars(settings), "seed": 1}), "ResNet50")
    longer = RunSettings(**{**vars(settings), "protocol": settings.protocol.with_overrides(epochs=4)})
    assert key != baseline_cache_key(longer, "ResNet50")
    assert key != baseline_cache_key(settings, "ResNet50", seed=settings.seed + 1)  # another training seed
    # the data: another folder, other split sizes, another macro or protocol retrain
    sizes = {"train": 1136, "val": 302, "test": 359}
    assert baseline_cache_key(settings, "ResNet50", split_sizes=sizes) == baseline_cache_key(
        settings, "ResNet50", split_sizes=dict(reversed(sizes.items())))
    assert key != baseline_cache_key(settings, "ResNet50", split_sizes=sizes)
    assert baseline_cache_key(settings, "ResNet50", split_sizes=sizes) != baseline_cache_key(
        settings, "ResNet50", split_sizes={**sizes, "val": 300})
    elsewhere = RunSettings(**{**vars(settings), "data_dir": str(tmp_path / "other-tree")})
    assert key != baseline_cache_key(elsewhere, "ResNet50")
    assert baseline_cache_key(elsewhere, "ResNet50") == baseline_cache_key(
        RunSettings(**{**vars(settings), "data_dir": str(tmp_path / "x" / ".." / "other-tree")}), "ResNet50")
    cifar = RunSettings(**{**vars(settings), "protocol": load_protocol("cifar10")})
    assert key != baseline_cache_key(cifar, "ResNet50")
    smoothed = RunSettings(**{**vars(settings), "protocol": settings.protocol.with_overrides(label_smoothing=0.1)})
    assert key != baseline_cache_key(smoothed, "ResNet50")  # any recipe field
    monkeypatch.setattr("ablate.tune.jobs.code_version", lambda: "edited")
    assert key != baseline_cache_key(settings, "ResNet50")


def test_code_version_follows_the_source(tmp_path):
    package = Path(ablate.__file__).parent
    copy = tmp_path / "ablate"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert code_version(copy) == code_version(package)
    for shown in ("report/render.py", "cli/parser.py", "analysis/verdicts.py", "monitor.py"):  # read, never train
        (copy / shown).write_text((copy / shown).read_text() + "\n# edited\n")
    assert code_version(copy) == code_version(package)
    (copy / "models" / "layers.py").write_text((copy / "models" / "layers.py").read_text() + "\n# edited\n")
    assert code_version(copy) != code_version(package)


def test_delta_is_nan_not_an_error_when_the_reference_baseline_failed():
    rows = [{"kind": "baseline", "name": "ResNet50", "status": "failed", "reason": "RuntimeError: boom"},
            {"kind": "baseline", "name": "R50-max", "status": "completed", "val_top1": 88.0},
            {"kind": "candidate", "name": "relu-dwconv-w1", "status": "completed", "val_top1": 91.0}]
    table = trials_frame(rows)
    assert table["delta_top1"].isna().all()
    assert table.loc[table["name"] == "ResNet50", "reason"].item() == "RuntimeError: boom"
    assert math.isnan(table.loc[table["name"] == "relu-dwconv-w1", "delta_top1"].item())
