"""Issue 34, the fast half: what a resume meets in a run folder — a torn Optuna journal, a full disk, a record
that is gone, timings of an earlier session, damaged or incomplete run files, a model too big for the node — each
repaired, rebuilt or refused in one line. The end-to-end half (Ray, tiny runs) is tests/test_resume_faults_e2e.py.

A full disk is met two ways: ENOSPC injected at the lowest level of the write functions (``os.write`` / the writer
callable) with monkeypatch, and a real one on a 1 MiB tmpfs mounted in a user namespace (``unshare -rm``; skipped
where the kernel does not allow one).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
from conftest import tiny_space_text

from ablate.core.errors import UsageError
from ablate.core.files import DiskFull, append_line, find_disk_full, read_json, read_lines, write_atomic, write_json
from ablate.protocols import load_protocol
from ablate.space import load_space
from ablate.tune import RunSettings
from ablate.tune.memory import check_fits, check_run, estimate
from ablate.tune.record import RunRecord, earlier_lives_seconds, read_progress, unstarted_run
from ablate.tune.search import AblationSearch
from ablate.tune.storage import make_storage, repair_journal

REPO = Path(__file__).resolve().parent.parent


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and "Traceback" not in text, text
    return text


@pytest.fixture
def tiny(tmp_path) -> RunSettings:
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_space_text("tiny", baselines=""))
    return RunSettings(load_space(path), load_protocol("digits").with_overrides(epochs=2), tmp_path / "results" / "r",
                       trials=4, design="search", confirm=0, dashboard=False)


# --- a full disk ---------------------------------------------------------------------------------------------------

def test_enospc_in_an_atomic_write_is_one_line_naming_the_folder_and_the_old_file_stays(tmp_path, monkeypatch):
    path = tmp_path / "run" / "timings.json"
    write_json(path, {"a": 1})

    def full(tmp: Path) -> None:
        tmp.write_bytes(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFull) as err:
        write_atomic(path, full)
    line = one_line(err.value)
    assert line.startswith(f"disk full: {path.parent} has ") and "needs about" in line and "resume the run" in line
    assert read_json(path) == {"a": 1} and [p.name for p in path.parent.iterdir()] == ["timings.json"]


def test_a_writer_that_fails_in_its_own_words_on_a_full_folder_is_a_full_disk(tmp_path, monkeypatch):
    """torch.save says "unexpected pos …" when the disk fills: a failed write with less free space than it needed."""
    monkeypatch.setattr(shutil, "disk_usage", lambda _: SimpleNamespace(total=1 << 30, used=1 << 30, free=4096))

    def torch_like(tmp: Path) -> None:
        tmp.write_bytes(b"x" * 4096)
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 4096 vs 4032")

    with pytest.raises(DiskFull, match=r"disk full: .* has 0\.0 MiB free"):
        write_atomic(tmp_path / "checkpoint.pt", torch_like)
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="unexpected pos"):  # with room to spare it is what it says
        write_atomic(tmp_path / "checkpoint.pt", torch_like)


def test_enospc_in_an_append_leaves_the_log_whole(tmp_path, monkeypatch):
    log = tmp_path / "epochs.jsonl"
    append_line(log, json.dumps({"epoch": 1}))

    class HalfThenFull:  # the lowest level an append reaches: half the line gets onto the disk, then ENOSPC
        def __init__(self, raw):
            self.raw = raw

        def __getattr__(self, name):
            return getattr(self.raw, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.raw.close()

        def write(self, data):
            self.raw.write(bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("ablate.core.files.open", lambda *a, **k: HalfThenFull(open(*a, **k)), raising=False)
    with pytest.raises(DiskFull) as err:
        append_line(log, json.dumps({"epoch": 2, "val_top1": 50.0}))
    monkeypatch.undo()
    assert str(tmp_path) in one_line(err.value)
    assert log.read_text() == '{"epoch": 1}\n'  # the torn half was cut off again
    append_line(log, json.dumps({"epoch": 2}))
    assert [r["epoch"] for r in read_lines(log)] == [1, 2]


def test_the_searcher_state_goes_through_the_atomic_writer(tiny, tmp_path, monkeypatch):
    tmp_path = tmp_path / "run"
    tmp_path.mkdir()
    searcher = AblationSearch(2, tiny.space.grid_points(), space=tiny.space, metric="val_top1", mode="max",
                              storage=make_storage(None, tmp_path))
    path = tmp_path / "searcher-state.pkl"
    searcher.save(str(path))
    before = path.read_bytes()
    monkeypatch.setattr(Path, "write_bytes", lambda self, data: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(DiskFull, match=f"disk full: {tmp_path} has"):
        searcher.save(str(path))
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["optuna.journal",
                                                                                         "searcher-state.pkl"]


def test_a_full_disk_wrapped_by_ray_or_in_a_trials_error_text_is_found(tmp_path):
    worker = DiskFull(f"disk full: {tmp_path}/trials/x has 0.0 MiB free, and writing there needs about 1.0 MiB; …")
    wrapped = RuntimeError("ray task failed")
    wrapped.cause = worker
    assert str(find_disk_full(wrapped, tmp_path)) == str(worker)
    text = f"Failure # 1\nTraceback …\nablate.core.files.DiskFull: {worker}\n"
    assert str(find_disk_full(RuntimeError(text), tmp_path)) == str(worker)
    assert "disk full" in str(find_disk_full(OSError(errno.ENOSPC, "No space left on device"), tmp_path))
    assert find_disk_full(ValueError("a model's own failure"), tmp_path) is None


TMPFS_SCRIPT = r"""
import sys, torch, json
from pathlib import Path
from ablate.core.files import DiskFull, append_line, write_atomic
folder = Path(sys.argv[1])
out = {}
try:
    write_atomic(folder / "checkpoint.pt", lambda tmp: torch.save(torch.zeros(1 << 19), tmp))  # 2 MiB > 1 MiB
except DiskFull as err:
    out["torch"] = str(err)
log = folder / "epochs.jsonl"
append_line(log, "{}")
try:
    append_line(log, json.dumps({"pad": "x" * (2 << 20)}))
except DiskFull as err:
    out["append"] = str(err)
out["log"] = log.read_text()
out["left"] = sorted(p.name for p in folder.iterdir())
print(json.dumps(out))
"""


def test_a_real_full_disk_on_a_small_tmpfs(tmp_path):
    """ENOSPC from the kernel, not injected: a 1 MiB tmpfs in a user namespace, torch.save and an append on it."""
    mount = tmp_path / "small"
    mount.mkdir()
    script = f'mount -t tmpfs -o size=1m tmpfs {mount} && exec {sys.executable} -c "$0" {mount}'
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {mount}"],
                           capture_output=True, text=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode:
        pytest.skip("no user namespaces here to mount a small tmpfs in")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script, TMPFS_SCRIPT], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["torch"].startswith(f"disk full: {mount} has ") and "\n" not in out["torch"]
    assert out["append"].startswith(f"disk full: {mount} has ")
    assert out["log"] == "{}\n" and out["left"] == ["epochs.jsonl"]  # no temporary file, no torn line left


# --- the Optuna journal ------------------------------------------------------------------------------------------

def _study_with_trials(run_dir: Path, n: int) -> None:
    study = optuna.create_study(storage=make_storage(None, run_dir), study_name="r", direction="maximize")
    for value in range(n):
        trial = study.ask()
        trial.suggest_categorical("x", [0, 1, 2, 3])
        study.tell(trial, float(value))


def test_a_torn_journal_tail_is_cut_before_optuna_opens_it(tmp_path, capsys):
    _study_with_trials(tmp_path, 3)
    journal = tmp_path / "optuna.journal"
    whole = journal.read_bytes()
    os.truncate(journal, len(whole) - 40)  # the issue's `truncate -s -40`
    study = optuna.load_study(study_name="r", storage=make_storage(None, tmp_path))
    assert "cut off a torn last line" in capsys.readouterr().out
    states = [t.state for t in study.trials]
    assert states[:2] == [optuna.trial.TrialState.COMPLETE] * 2  # the torn operation (the last tell) never happened
    trial = study.ask()  # the next append starts a line of its own: the journal stays readable
    study.tell(trial, 9.0)
    assert len(optuna.load_study(study_name="r", storage=make_storage(None, tmp_path)).trials) == 4


def test_a_damaged_journal_line_is_one_line(tmp_path):
    _study_with_trials(tmp_path, 2)
    journal = tmp_path / "optuna.journal"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:2] + ['{"op_code": 4, "worker_id": "x", "stu\n'] + lines[2:]))
    with pytest.raises(UsageError) as err:
        repair_journal(journal)
    assert "optuna.journal is damaged (line 3 is not JSON)" in one_line(err.value)


def test_a_searcher_ray_failed_to_restore_refuses_to_start_the_study_over(tiny, tmp_path):
    storage = make_storage(None, tmp_path)
    design = tiny.space.grid_points()[:2]

    def searcher() -> AblationSearch:
        return AblationSearch(2, tiny.space.grid_points(), design, space=tiny.space, metric="val_top1", mode="max",
                              storage=storage, study_name="r")

    first = searcher()
    config = first.suggest("t1")
    first.on_trial_complete("t1", {"val_top1": 50.0, "epoch": 2, **config})
    first.save(str(tmp_path / "state.pkl"))
    with pytest.raises(UsageError, match="could not restore this run's Tune state") as err:
        searcher().suggest("t2")  # Ray restarted the experiment with a searcher it never restored
    one_line(err.value)
    restored = searcher()
    restored.restore(str(tmp_path / "state.pkl"))
    assert restored.suggest("t2")  # a restored searcher goes on


# --- records, timings, wall time ---------------------------------------------------------------------------------

def test_a_trial_tune_finished_without_a_record_is_rebuilt_from_disk(tiny, capsys):
    block = tiny.space.config(tiny.space.grid_points()[0])
    state = tiny.state_dir(block)
    state.mkdir(parents=True)
    for epoch in (1, 2):
        append_line(state / "epochs.jsonl", json.dumps({"epoch": epoch, "val_top1": 40.0 + epoch, "test_top1": 41.0,
                                                        "epoch_seconds": 1.5}))
    np.savez(state / "predictions.npz", val=np.array([True, False]), test=np.array([False, True, True]))
    config = {a.name: getattr(block, a.name) for a in tiny.space.axes} | {"phase": "design"}
    metrics = {"trial_id": "abc_00001", "epoch": 2, "val_top1": 42.0, "params": 1234, "node": "n1"}
    record = RunRecord(tiny.run_dir)
    record.file({"row": {"trial_id": "abc_00000", "kind": "candidate", "config": "x"}, "curves": [],
                 "predictions": {}})
    results = [SimpleNamespace(metrics=metrics, config=config, error=None),
               SimpleNamespace(metrics={"trial_id": "abc_00000"}, config=config, error=None)]  # already filed
    assert record.file_missing(tiny, results) == ["abc_00001"]
    filed = read_json(tiny.run_dir / "records" / "abc_00001.json")
    assert filed["row"]["status"] == "completed" and filed["row"]["epochs"] == 2 and filed["row"]["params"] == 1234
    assert [c["epoch"] for c in filed["curves"]] == [1, 2] and filed["predictions"] == {"val": "10", "test": "011"}
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "abc_00001" in out and "had no record" in out and "rebuilt" in out
    assert record.file_missing(tiny, results) == []  # once filed, nothing to rebuild


def test_timings_are_merged_never_overwritten_with_less(tmp_path):
    record = RunRecord(tmp_path)
    record.save_timings({"a": {"latency_ms": 1.0, "throughput": 10.0}, "b": {"latency_ms": 2.0, "throughput": 5.0}})
    assert record.save_timings({}) == read_json(tmp_path / "timings.json")  # a timer that died times nothing
    assert read_json(tmp_path / "timings.json")["b"] == {"latency_ms": 2.0, "throughput": 5.0}
    record.save_timings({"a": {"latency_ms": 1.5, "throughput": 9.0}})
    assert read_json(tmp_path / "timings.json") == {"a": {"latency_ms": 1.5, "throughput": 9.0},
                                                   "b": {"latency_ms": 2.0, "throughput": 5.0}}


def test_wall_seconds_sum_every_life_of_a_run_a_killed_one_too(tmp_path):
    assert earlier_lives_seconds({}, tmp_path) == 0.0
    started = time.time() - 100
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "t.json").write_text("{}")
    os.utime(tmp_path / "records" / "t.json", (started + 60, started + 60))  # the killed life's last write
    killed = {"wall_seconds": 30.0, "started_at": started, "finished": None}
    assert earlier_lives_seconds(killed, tmp_path) == pytest.approx(90.0, abs=0.01)
    assert earlier_lives_seconds({**killed, "finished": "then", "wall_seconds": 95.0}, tmp_path) == 95.0


# --- damaged or incomplete run files -----------------------------------------------------------------------------

def test_run_json_missing_a_key_is_one_line(tiny, tmp_path):
    from ablate.tune.collect import run_meta

    meta = json.loads(json.dumps(run_meta(tiny), default=str))
    assert RunSettings.from_json(meta, tiny.run_dir).trials == tiny.trials
    del meta["plugins"]
    with pytest.raises(UsageError, match=r"run\.json is damaged \(no 'plugins' key") as err:
        RunSettings.from_json(meta, tiny.run_dir)
    one_line(err.value)
    with pytest.raises(UsageError, match="a value of the wrong kind"):
        RunSettings.from_json({**run_meta(tiny), "objectives": 3}, tiny.run_dir)


@pytest.mark.parametrize("progress", [[1, 2], {"trials": [1]}, {"trials": {}, "jobs": {"done": "x"}},
                                      {"updated": "noon"}])
def test_progress_json_of_the_wrong_shape_is_one_line_in_status(tmp_path, progress):
    from ablate.monitor import status_lines

    write_json(tmp_path / "run.json", {"finished": None, "started_at": time.time()})
    write_json(tmp_path / "progress.json", progress)
    with pytest.raises(UsageError, match=r"progress\.json is damaged") as err:
        status_lines(tmp_path)
    one_line(err.value)
    write_json(tmp_path / "progress.json", {"updated": time.time(), "trials": {"running": 1},
                                            "jobs": {"done": 1, "total": 3}, "best": None})
    assert read_progress(tmp_path)["jobs"] == {"done": 1, "total": 3} and status_lines(tmp_path)


def test_a_folder_without_run_json_is_one_line_to_resume_and_to_start(tmp_path, monkeypatch, capsys):
    from ablate import cli

    folder = tmp_path / "results" / "half"
    folder.mkdir(parents=True)
    (folder / "leftover.txt").write_text("x")
    assert "has no run.json" in str(unstarted_run(folder)) and unstarted_run(tmp_path / "nothing") is None
    monkeypatch.setenv("ABLATE_RESULTS_DIR", str(tmp_path / "results"))
    for args in (["--resume", "--name", "half"], ["--name", "half", "--space", "qlblock"]):
        assert cli.main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "has no run.json" in err and "rm -r" in err, err


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_non_finite_widths_are_refused_by_the_space_loader(tmp_path, value):
    for text in (f"axes:\n  nonlinearity: [relu]\n  spatial: [dwconv]\n  width: [{value}]\n",
                 f"axes:\n  nonlinearity: [relu]\n  spatial: [dwconv]\nfixed:\n  width: {value}\n"):
        (tmp_path / "s.yaml").write_text(text)
        with pytest.raises(UsageError, match=r"s\.yaml:\d+: invalid value .* for axis 'width'") as err:
            load_space(tmp_path / "s.yaml")
        one_line(err.value)


def test_a_missing_axis_is_stated_in_one_line(tmp_path):
    from ablate.space.loader import unnamed_axes, unnamed_axes_line

    (tmp_path / "s.yaml").write_text("axes:\n  nonlinearity: [relu, multiply]\n  width: [1]\n")
    space = load_space(tmp_path / "s.yaml")
    assert unnamed_axes(space) == {"spatial": "conv3x3"} and {b.spatial for b in space.grid()} == {"conv3x3"}
    line = unnamed_axes_line(space)
    assert "names no spatial: every block gets the default spatial conv3x3" in line and "\n" not in line
    (tmp_path / "s.yaml").write_text("axes:\n  nonlinearity: [relu, multiply]\n  width: [1]\n"
                                     "fixed:\n  spatial: dwconv\n")
    assert unnamed_axes_line(load_space(tmp_path / "s.yaml")) is None
    assert unnamed_axes_line(load_space("qlblock")) is None and unnamed_axes_line(load_space("qlblock-iso")) is None


# --- widths bounded by the node's memory -------------------------------------------------------------------------

def test_the_memory_estimate_counts_the_models_parameters(tiny):
    from ablate.models import build_model

    protocol = load_protocol("digits")
    for config in ("relu-dwconv-w0.5", "multiply-maxpool-w4"):
        memory = estimate(config, protocol, "cifar-tiny", 10, (3, 32, 32), "cpu")
        real = sum(p.numel() for p in build_model(config, "cifar-tiny", 10).parameters())
        assert memory.params == real and memory.activations_per_image > 0
        # weights, grads and SGD's momentum at 4 bytes, plus the kept activations of a batch
        assert memory.bytes == 4.0 * 3 * real + 4.0 * protocol.batch_size * memory.activations_per_image


def test_a_width_the_node_cannot_hold_is_refused_before_training(tiny, tmp_path):
    protocol = load_protocol("digits")
    wide = load_space(tmp_path / "w.yaml") if (tmp_path / "w.yaml").write_text(
        "axes:\n  nonlinearity: [relu]\n  spatial: [dwconv]\n  width: [0.5, 1000]\nmacro: cifar-tiny\nbaselines: []\n"
    ) else None
    blocks = wide.grid()
    with pytest.raises(UsageError, match=r"relu-dwconv-w1000 needs at least \d+\.\d GiB to train .* more than the "
                                         r"24\.0 GiB") as err:
        check_fits(blocks, (), protocol, "cifar-tiny", 10, (3, 32, 32), "cpu", available=24 * 2.0 ** 30)
    one_line(err.value)
    check_fits(blocks[:1], ("resnet50",), protocol, "cifar-tiny", 10, (3, 32, 32), "cpu", available=24 * 2.0 ** 30)
    check_run(tiny, 10, (3, 32, 32))  # the tiny space fits any machine that runs the tests


def test_a_run_joining_a_cluster_leaves_the_memory_check_to_the_nodes(tiny, monkeypatch):
    """The driver's memory says nothing of a cluster's nodes: only a local run refuses a model it cannot hold."""
    import dataclasses

    from ablate.tune import run

    def refuse(*_):
        raise UsageError("too big for this machine")

    monkeypatch.setattr(run, "check_run", refuse)
    with pytest.raises(UsageError, match="too big"):
        run._with_data(tiny)
    assert run._with_data(dataclasses.replace(tiny, address="auto"))[1]["test"] > 0
