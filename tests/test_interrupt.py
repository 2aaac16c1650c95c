"""Ctrl-C stops a run — Tune's trials and the Ray tasks beside them — with exit code 130 and the
command that resumes it; the resumed run then ends with every row."""

import os
import re
import signal
import time

import pandas as pd
import pytest
from conftest import ROOT, epochs_logged, session_alive, spawn_cli, tiny_space_text

EPOCHS = 2


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ctrl_c_stops_the_run_and_resume_finishes_it(tmp_path, spawn):
    results_dir = tmp_path / "results"
    space = tmp_path / "interrupt.yaml"
    space.write_text(tiny_space_text("interrupt", "resnet50"))
    args = ["--space", str(space), "--design", "search", "--trials", "4", "--epochs", str(EPOCHS), "--confirm", "0",
            "--scheduler", "none", "--max-concurrent", "1", "--name", "interrupted", "--no-dashboard", "--no-report"]
    driver = spawn_cli(spawn, results_dir, *args)
    run_dir = results_dir / "interrupted"
    deadline = time.time() + 300
    while time.time() < deadline and driver.poll() is None:  # mid-run: a Tune trial and the baseline training
        if any(epochs_logged(run_dir).values()) and (run_dir / "baselines").is_dir():
            break
        time.sleep(0.2)
    assert driver.poll() is None, driver.stdout.read()[-3000:]
    sent = time.monotonic()
    os.killpg(driver.pid, signal.SIGINT)  # as Ctrl-C in a terminal: the driver's whole process group
    out, _ = driver.communicate(timeout=60)  # a guard against a hang, not a measurement: how long it took is shown
    print(f"SIGINT to exit: {time.monotonic() - sent:.1f} s")  # with -s (8.1 s here, idle)
    assert driver.returncode == 130, out[-3000:]
    resume = f"python {ROOT / 'run_ablation.py'} --resume --name interrupted"
    assert re.search(r"interrupted: .*continue with `" + re.escape(resume) + "`", out), out[-3000:]
    time.sleep(1)
    assert session_alive(driver.pid) == []  # nothing of the run left: Ray's workers, raylet and GCS included

    resumed = spawn_cli(spawn, results_dir, "--resume", "--name", "interrupted", "--no-dashboard", "--no-report")
    out, _ = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, out[-3000:]
    table = pd.read_parquet(run_dir / "trials.parquet")
    candidates, baselines = table[table["kind"] == "candidate"], table[table["kind"] == "baseline"]
    assert len(candidates) == 4 and candidates["config"].is_unique and len(baselines) == 1, table
    assert (table["status"] == "completed").all() and (table["epochs"] == EPOCHS).all(), table
