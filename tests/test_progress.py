"""The progress display: one line redrawn in place on a terminal; plain lines at most every 30 s otherwise."""

import io
from pathlib import Path
from types import SimpleNamespace

import pytest

from ablate.core.formatting import compact_duration
from ablate.planning.timing import FIXED_SECONDS_PER_MODEL
from ablate.tune import progress as progress_module
from ablate.tune.progress import PLAIN_EVERY_S, Eta, RunProgress


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def trial(i, status, epoch=0):
    return SimpleNamespace(trial_id=f"t{i}", status=status, last_result={"epoch": epoch, "val_top1": 50.0 + i})


@pytest.fixture
def setup(monkeypatch, tmp_path):
    clock = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    settings = SimpleNamespace(run_dir=Path(tmp_path), trials=3, protocol=SimpleNamespace(epochs=2))
    return RunProgress(settings, [], eta=Eta({"a": 60.0}, 1)), clock


def test_plain_lines_at_most_every_30_s_and_the_last_one_always(setup, monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(progress_module.sys, "stdout", out)
    progress, clock = setup
    running = [trial(0, "RUNNING", 1), trial(1, "PENDING"), trial(2, "PENDING")]
    for step in range(60):  # 60 calls over 59 s: two lines (at 0 s and at 30 s)
        progress.show(running)
        clock.now += 1.0
    assert len(out.getvalue().splitlines()) == 2
    done = [trial(0, "TERMINATED", 2), trial(1, "TERMINATED", 1), trial(2, "ERROR", 1)]
    progress.show(done)  # the last trial ended: printed at once, 1 s after the previous call
    progress.show(done)  # and only once
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[-1].startswith("[ablate] trials 3/3 done: 1 completed, 1 pruned, 1 failed; 0 running")
    assert PLAIN_EVERY_S == 30.0


def test_a_terminal_gets_one_line_redrawn_in_place(setup, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    monkeypatch.setattr(progress_module.sys, "stdout", out)
    progress, clock = setup
    for i in range(5):
        progress.show([trial(0, "RUNNING", 1), trial(1, "PENDING"), trial(2, "PENDING")])
        clock.now += 1.0
    text = out.getvalue()
    assert "\n" not in text.rstrip("\n") and text.count("\r") >= 5  # carriage returns, no new lines
    assert "[ablate] trials 0/3" in text and "ETA" in text
    assert progress.__getstate__()["bar"] is None  # Ray pickles the callback; the bar stays behind



def test_the_eta_is_the_plans_makespan_rescaled_by_what_was_measured():
    eta = Eta.of({"seconds": {"a": 100.0, "b": 50.0, "c": 30.0}}, workers=2)
    assert eta.left(["a", "b", "c"]) == 100.0  # a on one worker, b then c on the other
    assert eta.left(["a", None]) == 100.0  # an unsampled candidate: the plan's median config
    assert eta.left(["a"], models_timed=4) == 100.0 + 4 * FIXED_SECONDS_PER_MODEL  # the side-by-side timing follows
    eta.ended("t1", "b", {"train_seconds": 100.0})  # b took twice its projection: so will the rest
    eta.ended("t1", "b", {"train_seconds": 100.0})  # counted once
    eta.ended("t2", "c", {"train_seconds": float("nan")})  # failed before an epoch: no measurement
    assert eta.scale == 2.0 and eta.left(["a", "c"]) == 200.0
    assert eta.text(["a"], later=["c"]) == ", ETA 3m20s (run 4m20s)"
    assert Eta.of({}, 2).text(["a"]) == ""  # a plan without times: no ETA rather than a made-up one


def test_the_trials_line_counts_the_baselines_beside_them_and_says_the_run_eta(tmp_path, monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(progress_module.sys, "stdout", out)
    settings = SimpleNamespace(run_dir=Path(tmp_path), trials=2, protocol=SimpleNamespace(epochs=2), confirm=1,
                               confirmation_seeds=(1, 2))
    progress = RunProgress(settings, {"baseline-R-s0": "base"}, eta=Eta({"cand": 60.0, "base": 120.0}, 1))
    progress.show([trial(0, "TERMINATED", 2), trial(1, "RUNNING", 1)])
    # left: 1 trial (median 90 s) and the baseline (120 s) on one worker: 3m30s; then 2 confirmations (90 s each)
    # and the timing of 2 trials + 1 baseline config
    line = out.getvalue().strip()
    assert line.endswith(f", ETA 3m30s (run {compact_duration(210 + 180 + 3 * FIXED_SECONDS_PER_MODEL)})"), line
