"""``run_ablation.py status results/<run>`` reads a run folder alone: running or finished, counts, best, elapsed."""

import json
import time

import pandas as pd

from ablate import cli
from ablate.monitor import status_lines


def _table():
    return pd.DataFrame([
        {"kind": "candidate", "name": "relu-dwconv-w1", "status": "completed", "phase": "design", "val_top1": 91.5},
        {"kind": "candidate", "name": "multiply-dwconv-w1", "status": "completed", "phase": "design", "val_top1": 93.0},
        {"kind": "candidate", "name": "multiply-dwconv-w1", "status": "completed", "phase": "confirm",
         "val_top1": 92.0},
        {"kind": "candidate", "name": "hardball-maxpool-w1", "status": "pruned", "phase": "search", "val_top1": 40.0},
        {"kind": "baseline", "name": "ResNet50", "status": "completed", "phase": "design", "val_top1": 95.0},
    ])


def test_a_running_run(tmp_path):
    now = time.time()
    (tmp_path / "run.json").write_text(json.dumps({"trials_requested": 12, "started_at": now - 75,
                                                   "wall_seconds": 60.0, "finished": None}))
    (tmp_path / "progress.json").write_text(json.dumps({"updated": now - 3, "trials": {"running": 2},
                                                        "jobs": {"done": 4, "total": 9}}))
    _table().to_parquet(tmp_path / "trials.parquet")
    lines = status_lines(tmp_path, now=now)
    assert lines[0] == f"run {tmp_path.name}: in progress (tables updated 0 min 3 s ago)"
    assert lines[1] == "trials 3/12 done: 2 completed, 1 pruned, 0 failed; 2 running"  # confirmations are not trials
    assert lines[2] == "baselines and confirmations: 4/9 done"
    assert lines[3] == ("best so far: multiply-dwconv-w1 at 93.00 % val top-1 (the run seed's: a selection number, "
                        "not a verdict)")
    assert lines[4] == "elapsed: 2 min 15 s"  # 60 s of an earlier session + 75 s of this one


def test_a_finished_run_through_the_cli(tmp_path, capsys):
    (tmp_path / "run.json").write_text(json.dumps({"trials_requested": 3, "wall_seconds": 3725.0,
                                                   "finished": "2026-11-26 06:00:00 UTC"}))
    _table().to_parquet(tmp_path / "trials.parquet")
    assert cli.main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"run {tmp_path.name}: finished 2026-11-26 06:00:00 UTC"
    assert out[1].endswith("; 0 running") and out[-1] == "elapsed: 1 h 2 min 5 s"


def test_not_a_run_folder_exits_2(tmp_path, capsys):
    assert cli.main(["status", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "run.json" in err
