"""A record that survives crashes and a store that is really reused, proved on the local Ray with trainers that count
or crash on purpose; and the live record's writer read back by ``status``."""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pandas as pd
import pytest
import ray.cloudpickle
from conftest import epochs_logged, kill_when, one_trial_done_and_the_next_mid_way, spawn_cli, tiny_space_text
from optuna.trial import TrialState

from ablate.monitor import status_lines
from ablate.protocols import load_protocol
from ablate.records import append_epoch_log, save_predictions
from ablate.results import load, write_run_json
from ablate.space import load_space
from ablate.training import read_epoch_log, train
from ablate.tune import RunSettings, run_ablation
from ablate.tune.progress import RunProgress
from ablate.tune.record import RunRecord

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this test module
EPOCHS = 2


@dataclass(frozen=True)
class CountingTrainer:
    """``ablate.training.train`` that leaves one file per call in ``marks`` (config and seed in its name)."""

    marks: str

    def __call__(self, config, protocol, **kw):
        Path(self.marks, f"{config}-s{kw.get('seed')}-{uuid.uuid4().hex}").touch()
        return train(config, protocol, **kw)


@dataclass(frozen=True)
class CrashOnceAfterEpochOne:
    """Crashes each block's first attempt right after epoch 1 (checkpoint and epoch log already written)."""

    marks: str

    def __call__(self, config, protocol, report=None, **kw):
        mark = Path(self.marks, f"{config}-s{kw.get('seed')}")

        def crash_once(metrics):
            if report is not None:
                report(metrics)
            if metrics["epoch"] == 1 and not mark.exists():
                mark.touch()
                raise RuntimeError(f"injected crash after epoch 1 of {config}")

        return train(config, protocol, report=crash_once, **kw)


def _settings(tmp_path, run: str, epochs: int = EPOCHS, **kw) -> RunSettings:
    space = tmp_path / "tiny.yaml"
    space.write_text(tiny_space_text("tiny", baselines="resnet50"))
    defaults = dict(space=load_space(space), protocol=load_protocol("digits").with_overrides(epochs=epochs),
                    run_dir=tmp_path / "results" / run, trials=2, seed=0, dashboard=False, max_failures=1,
                    design="balanced", scheduler="none", confirm=0, max_concurrent=1)
    return RunSettings(**{**defaults, **kw})


def _trained(marks: Path, block: str) -> int:
    return len(list(marks.glob(f"{block}-s*")))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_trial_that_crashes_once_is_retried_from_its_checkpoint(local_ray, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    settings = _settings(tmp_path, "retried", train_fn=CrashOnceAfterEpochOne(str(marks)),
                         space=load_space(_no_baselines(tmp_path)))
    table = run_ablation(settings).table
    candidates = table[table["kind"] == "candidate"]
    assert len(candidates) == 2 and (candidates["status"] == "completed").all(), candidates[["name", "reason"]]
    assert len(list(marks.iterdir())) == 2  # each crashed once
    for block in candidates["config"]:
        log = read_epoch_log(settings.state_dir(block_of(block)))
        assert [m["epoch"] for m in log] == [1, 2]  # epoch 1 not trained again: resumed from its checkpoint


def _no_baselines(tmp_path) -> Path:
    path = tmp_path / "none.yaml"
    path.write_text(tiny_space_text("none", baselines=""))
    return path


def block_of(config: str):
    from ablate.models import BlockConfig

    return BlockConfig.parse(config)


def test_the_live_record_feeds_status(tmp_path):
    settings = _settings(tmp_path, "live", space=load_space(_no_baselines(tmp_path)))
    run_dir = settings.run_dir
    run_dir.mkdir(parents=True)
    started = time.time() - 90.0
    write_run_json(run_dir, {"trials_requested": 2, "started_at": started, "wall_seconds": 0.0, "finished": None})
    record = RunRecord(run_dir)
    rows = [{"kind": "candidate", "trial_id": f"t{i}", "name": name, "config": name, "status": status,
             "val_top1": top1, "test_top1": top1 - 1, "seed": 0, "phase": "design", "epochs": 2}
            for i, (name, status, top1) in enumerate([("relu-dwconv-w0.5", "completed", 91.25),
                                                      ("multiply-maxpool-w0.5", "pruned", 40.0)])]
    for row in rows:
        record.file({"row": row, "curves": [], "predictions": {}})
    assert sorted(p.name for p in (run_dir / "records").iterdir()) == ["t0.json", "t1.json"]
    record.write({"running": 1})
    lines = status_lines(run_dir, now=started + 90.0)
    assert lines[1] == "trials 2/2 done: 1 completed, 1 pruned, 0 failed; 1 running"
    assert ("best so far: relu-dwconv-w0.5 at 91.25 % val top-1 (the run seed's: a selection number, not a verdict)"
            in lines)
    assert lines[-1] == "elapsed: 1 min 30 s"
    progress = json.loads((run_dir / "progress.json").read_text())
    assert progress["best"] == {"val_top1": 91.25, "name": "relu-dwconv-w0.5"} and progress["trials"] == {"running": 1}


def test_while_models_are_filed_the_tables_are_rewritten_only_when_it_is_their_turn(tmp_path, monkeypatch):
    """A rewrite that took 1 s is not repeated for 10 s of filings (TABLES_REWRITE_RATIO): filing N models costs
    the driver a bounded share of its time, not N rewrites of N records; progress.json follows every filing, and
    a phase's end (``now=True``) or ``write_due`` brings the tables up to date."""
    import ablate.results
    import ablate.tune.record as record_module

    clock, rewrites = [0.0], []

    def rewrite(run_dir, rows, curves, predictions=None):  # a rewrite that takes 1 s of the fake clock
        rewrites.append(len(list(rows)))
        clock[0] += 1.0

    monkeypatch.setattr(ablate.results, "write_tables", rewrite)  # the record imports it where it rewrites
    monkeypatch.setattr(record_module, "monotonic", lambda: clock[0])
    record = RunRecord(tmp_path / "run")

    def file(i):
        row = {"kind": "candidate", "trial_id": f"t{i}", "name": f"c{i}", "config": f"c{i}", "status": "completed",
               "val_top1": float(i), "seed": 0, "phase": "design"}
        record.file({"row": row, "curves": [], "predictions": {}})
        return record.write(now=False)

    file(0)
    assert rewrites == [1]  # the first is due at once
    for i in range(1, 5):
        clock[0] += 1.0
        assert file(i) == (float(i), f"c{i}")  # the best so far follows every filing …
    assert rewrites == [1] and json.loads((tmp_path / "run" / "progress.json").read_text())["best"]["name"] == "c4"
    record.write_due()
    assert rewrites == [1]  # … the tables wait: 5 s since a 1 s rewrite
    clock[0] += 6.0
    record.write_due()
    assert rewrites == [1, 5]  # 11 s since: their turn
    file(5)
    record.write()  # a phase's end: now
    assert rewrites == [1, 5, 6]


def test_the_callback_ray_restores_files_into_the_same_record(tmp_path):
    """Ray restores the callback pickled in tuner.pkl on --resume: that copy, with no driver state to reach, files
    a trial Tune ends into the run's record, from the trial's last result and what its trainer left on disk."""
    settings = _settings(tmp_path, "restored", space=load_space(_no_baselines(tmp_path)))
    restored = ray.cloudpickle.loads(ray.cloudpickle.dumps(RunProgress(settings, [])))
    block = block_of("relu-dwconv-w0.5")
    state_dir = settings.state_dir(block)
    state_dir.mkdir(parents=True)  # what the trainer leaves there
    for epoch in (1, 2):
        append_epoch_log(state_dir, {"epoch": epoch, "val_top1": 80.0 + epoch, "epoch_seconds": 1.0})
    save_predictions(state_dir, {"val": np.array([True, False, True]), "test": np.array([False, True])})
    config = {"nonlinearity": block.nonlinearity, "spatial": block.spatial, "width": block.width, "phase": "design"}
    trial = SimpleNamespace(trial_id="abc_00000", config=config, status="RUNNING",
                            last_result={"epoch": 2, "val_top1": 82.0, "params": 1234, "status": "running"})
    restored.on_trial_complete(0, [trial], trial)
    outcome = RunRecord(settings.run_dir).outcomes()["abc_00000"]
    assert outcome["predictions"] == {"val": "101", "test": "01"} and [e["epoch"] for e in outcome["curves"]] == [1, 2]
    row = load(settings.run_dir).set_index("trial_id").loc["abc_00000"]
    assert (row["status"], row["epochs"], row["val_top1"], row["params"], row["phase"]) == \
        ("completed", 2, 82.0, 1234, "design")


def test_a_run_moved_to_another_folder_is_refused_on_resume_in_one_line(tmp_path, capsys, monkeypatch):
    """Ray's saved state (tuner.pkl) holds the folder a run was started in: resuming a moved run would read a study
    that is not there (Ray then hangs), so --resume says where the run belongs, before Ray starts or anything is
    written."""
    from ablate import cli
    from ablate.tune.collect import run_meta

    settings = _settings(tmp_path, "started-here")
    moved = tmp_path / "results" / "moved-here"
    moved.mkdir(parents=True)
    write_run_json(moved, run_meta(settings, started="earlier", finished=None))
    before = sorted(moved.rglob("*"))
    monkeypatch.setenv("ABLATE_RESULTS_DIR", str(tmp_path / "results"))
    assert cli.main(["--resume", "--name", "moved-here", "--no-dashboard"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"was started as {settings.run_dir}" in err and "move it back" in err, err
    assert sorted(moved.rglob("*")) == before and not settings.run_dir.exists()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_driver_killed_mid_trial_and_again_mid_confirmation_resumes_without_training_anything_twice(tmp_path,
                                                                                                     spawn):
    """SIGKILL the driver and its local Ray twice, each time followed by ``--resume``: once when one Tune trial has
    completed and the next is between its epochs (the unfinished run's status and report say so; the trial resumes
    from its epoch-1 checkpoint), then when a confirmation of the best candidate is between its epochs. The run ends
    with every model trained once, each epoch once, the study's finished values kept, every per-image record.
    (One chain instead of a test per kill: each driver start costs a Ray start-up and every worker's imports.)"""
    from ablate import cli
    from ablate.tune import make_storage

    results_dir = tmp_path / "results"
    space = tmp_path / "tiny.yaml"
    space.write_text(tiny_space_text("tiny", baselines="resnet50"))
    args = ["--space", space, "--trials", "2", "--epochs", EPOCHS, "--name", "killed", "--no-dashboard",
            "--no-report", "--max-concurrent", "1", "--design", "balanced", "--scheduler", "none", "--confirm", "1",
            "--seeds", "2"]
    resume = ["--resume", "--name", "killed", "--no-dashboard", "--no-report"]
    run_dir = results_dir / "killed"

    at_kill = kill_when(spawn_cli(spawn, results_dir, *args), run_dir, one_trial_done_and_the_next_mid_way)
    study = optuna.load_study(study_name="killed", storage=make_storage(None, run_dir))
    before = {t.number: t.values for t in study.trials if t.state == TrialState.COMPLETE}
    assert len(before) == 1
    live = pd.read_parquet(run_dir / "trials.parquet")  # written as the trial ended, before any resume
    assert list(live.loc[live["kind"] == "candidate", "status"]) == ["completed"]
    assert cli.main(["status", str(run_dir)]) == 0
    assert cli.main(["report", str(run_dir)]) == 0  # a report of the unfinished run says so
    assert "Status: IN PROGRESS" in (run_dir / "report.md").read_text()
    mid_way = next(trial for trial, epochs in at_kill.items() if epochs == [1])

    def confirming(logged: dict[str, list[int]]) -> bool:  # a confirmation (a fresh seed) is between its epochs
        return any(k.startswith("trials/") and not k.endswith("-s0") and v == [1] for k, v in logged.items())

    kill_when(spawn_cli(spawn, results_dir, *resume), run_dir, confirming, ("trials", "baselines"))
    resumed = spawn_cli(spawn, results_dir, *resume)
    out, _ = resumed.communicate(timeout=360)
    assert resumed.returncode == 0, out[-3000:]

    logged = epochs_logged(run_dir, ("trials", "baselines"))
    assert all(epochs == [1, 2] for epochs in logged.values()), logged  # every model trained each epoch once
    assert logged[mid_way] == [1, 2]  # resumed at epoch 2 from its checkpoint, not retrained from epoch 1
    table = pd.read_parquet(run_dir / "trials.parquet")
    assert (table["status"] == "completed").all(), table[["name", "seed", "status", "reason"]]
    assert not table.duplicated(["kind", "config", "seed"]).any() and table["trial_id"].is_unique
    assert sorted(table.loc[table["kind"] == "baseline", "seed"]) == [0, 1, 2]  # the run seed and both fresh seeds
    confirm = table[(table["kind"] == "candidate") & (table["phase"] == "confirm")]
    assert sorted(confirm["seed"]) == [1, 2] and confirm["config"].nunique() == 1
    curves = pd.read_parquet(run_dir / "curves.parquet")
    assert curves["trial_id"].nunique() == len(table)
    assert all(list(epochs) == [1, 2] for epochs in curves.groupby("trial_id")["epoch"].apply(list))
    study = optuna.load_study(study_name="killed", storage=make_storage(None, run_dir))
    after = {t.number: t.values for t in study.trials if t.state == TrialState.COMPLETE}
    assert len(after) == 2 and all(after[n] == v for n, v in before.items())  # nothing lost, nothing re-run
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    evidence = load(run_dir, predictions=True)
    assert set(evidence["trial_id"]) == set(table["trial_id"])  # every model's per-image record survived
