"""Issue 34 end to end, on tiny runs: a resume that meets a deleted record, a torn Optuna journal and a timing
worker that dies ends with the rows and numbers of the run it resumes; a full disk (a real one: a small tmpfs in a
user namespace) stops a run in one line with exit 2, and the resume after space is freed ends with the rows and
numbers of an uninterrupted run; two runs sharing a cache train a baseline once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
import ray
import ray.cloudpickle
from conftest import ablate_command, cli_env, tiny_space_text
from optuna.trial import TrialState

from ablate.protocols import load_protocol
from ablate.results import load
from ablate.space import load_space
from ablate.tune import RunSettings, make_storage, run_ablation
from ablate.tune import run as run_module

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
NUMBERS = ["trial_id", "config", "status", "epochs", "val_top1", "val_top5", "val_loss", "test_top1", "params", "macs"]

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import this test module


def tiny_settings(tmp_path: Path, name: str, **kw) -> RunSettings:
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_space_text("tiny", baselines=""))
    defaults = dict(space=load_space(path), protocol=load_protocol("digits").with_overrides(epochs=1),
                    run_dir=tmp_path / "results" / name, trials=3, seed=0, dashboard=False, max_failures=1,
                    confirm=0, design="search", scheduler="none", max_concurrent=1)
    return RunSettings(**{**defaults, **kw})


def rows(table: pd.DataFrame, columns: list[str] = NUMBERS) -> pd.DataFrame:
    return table.sort_values("trial_id")[columns].reset_index(drop=True)


def die(configs, settings):
    """A timing worker killed as it starts timing (its process exits)."""
    os._exit(1)


def dying_timer(resources, models):
    return ray.remote(die).options(num_cpus=0, max_retries=0)


@pytest.mark.timeout(600)
def test_a_resume_rebuilds_a_deleted_record_repairs_a_torn_journal_and_keeps_timings(local_ray, tmp_path,
                                                                                     monkeypatch, capsys):
    settings = tiny_settings(tmp_path, "damaged")
    first = run_ablation(settings)
    run_dir = first.run_dir
    before = rows(first.table, NUMBERS + ["latency_ms", "throughput"])
    timings = json.loads((run_dir / "timings.json").read_text())
    wall = json.loads((run_dir / "run.json").read_text())["wall_seconds"]
    assert len(before) == 3 and len(timings) == 3 and (before["status"] == "completed").all()

    deleted = before["trial_id"][1]
    (run_dir / "records" / f"{deleted}.json").unlink()  # the deleted record
    journal = run_dir / "optuna.journal"
    os.truncate(journal, journal.stat().st_size - 40)  # the issue's `truncate -s -40`
    monkeypatch.setattr(run_module, "timing_task", dying_timer)  # the timing worker dies on the resume
    capsys.readouterr()

    resumed = run_ablation(settings, resume=True)
    out = capsys.readouterr().out
    assert f"trial {deleted} (" in out and "had no record" in out and "rebuilt" in out, out
    assert "cut off a torn last line" in out and "timing failed" in out, out
    pd.testing.assert_frame_equal(rows(resumed.table, NUMBERS + ["latency_ms", "throughput"]), before)
    assert json.loads((run_dir / "timings.json").read_text()) == timings  # nothing measured was lost
    assert (run_dir / "records" / f"{deleted}.json").is_file()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["finished"] and meta["wall_seconds"] > wall  # both sessions' time
    study = optuna.load_study(study_name="damaged", storage=make_storage(None, run_dir))
    complete = {tuple(sorted(t.params.items())): t.values for t in study.trials if t.state == TrialState.COMPLETE}
    assert len(complete) == 3 and not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert sorted(v[0] for v in complete.values()) == sorted(before["val_top1"])  # study and record agree


@pytest.mark.ray
@pytest.mark.timeout(900)
def test_a_full_disk_is_one_line_exit_2_and_the_resume_loses_nothing(tmp_path):
    """A real ENOSPC: the run folder is a tmpfs (in a user namespace) too small for the run; then it is grown, as
    a user frees space, and the run resumed in the same namespace; compared with the same run on a roomy disk."""
    if not shutil.which("unshare") or subprocess.run(["unshare", "-rm", "true"]).returncode:
        pytest.skip("no user namespaces here to mount a small tmpfs in")
    space = tmp_path / "tiny.yaml"
    space.write_text(tiny_space_text("tiny", baselines=""))
    args = ["--space", str(space), "--trials", "3", "--epochs", "1", "--no-dashboard", "--no-report",
            "--max-concurrent", "1", "--scheduler", "none", "--design", "search", "--confirm", "1", "--seeds", "1"]
    plain = subprocess.run(ablate_command(*args, "--name", "plain"), cwd=REPO, capture_output=True, text=True,
                           timeout=400, env=cli_env(tmp_path / "roomy"))
    assert plain.returncode == 0, plain.stdout[-3000:] + plain.stderr[-3000:]

    small = tmp_path / "small"
    small.mkdir()
    kept = tmp_path / "kept"
    script = "\n".join([
        f"mount -t tmpfs -o size=300k tmpfs {small}",
        f"{' '.join(map(str, ablate_command(*args, '--name', 'full')))} > {tmp_path}/first.out 2> {tmp_path}/first.err",
        f"echo $? > {tmp_path}/first.rc",
        f"mount -o remount,size=64m tmpfs {small}",  # space freed
        f"{' '.join(map(str, ablate_command('--resume', '--name', 'full', '--no-dashboard', '--no-report')))} "
        f"> {tmp_path}/second.out 2> {tmp_path}/second.err",
        f"echo $? > {tmp_path}/second.rc",
        f"cp -a {small} {kept}",
    ])
    subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=REPO, timeout=800, env=cli_env(small))
    first_err = (tmp_path / "first.err").read_text()
    first = (tmp_path / "first.out").read_text() + first_err
    assert (tmp_path / "first.rc").read_text().strip() == "2", first[-3000:]
    assert first_err.count("\n") == 1 and first_err.startswith(f"error: disk full: {small}"), first[-3000:]
    assert "needs about" in first_err and "Traceback" not in first_err
    assert first_err.rstrip().endswith("(python run_ablation.py --resume --name full)")
    second = (tmp_path / "second.out").read_text() + (tmp_path / "second.err").read_text()
    assert (tmp_path / "second.rc").read_text().strip() == "0", second[-3000:]
    columns = [c for c in NUMBERS if c != "trial_id"] + ["phase", "seed"]
    expect = load(tmp_path / "roomy" / "plain").sort_values(["phase", "config", "seed"])[columns]
    got = load(kept / "full").sort_values(["phase", "config", "seed"])[columns]
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expect.reset_index(drop=True))
    assert (got["status"] == "completed").all() and (got["phase"] == "confirm").sum() == 1
