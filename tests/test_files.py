"""ablate.core.files: atomic writes that leave no half file, defensive reads that name the damaged file in one line, and
epoch logs that survive a torn last line."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import run_cli

from ablate.core.errors import UsageError
from ablate.core.files import append_line, read_json, read_lines, read_table, write_atomic, write_json, write_text


def test_an_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "run.json"
    write_json(path, {"a": 1})

    def half_then_crash(tmp):
        tmp.write_text('{"a": ')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_atomic(path, half_then_crash)
    assert read_json(path) == {"a": 1} and sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]
    write_text(tmp_path / "sub" / "report.md", "# ok\n")  # folders are made
    assert (tmp_path / "sub" / "report.md").read_text() == "# ok\n"


def test_a_damaged_json_or_table_is_one_line_naming_the_file(tmp_path):
    assert read_json(tmp_path / "missing.json") == {}
    (tmp_path / "run.json").write_text('{"seed": 0, "confirm"')
    with pytest.raises(UsageError, match=r"run\.json is damaged \(not valid JSON: .* at line 1\)") as err:
        read_json(tmp_path / "run.json")
    assert "\n" not in str(err.value)
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(UsageError, match="a JSON list, not an object"):
        read_json(tmp_path / "list.json")
    pd.DataFrame({"x": [1, 2]}).to_parquet(tmp_path / "trials.parquet")
    assert read_table(tmp_path / "trials.parquet")["x"].tolist() == [1, 2]
    data = (tmp_path / "trials.parquet").read_bytes()
    (tmp_path / "trials.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError, match=r"trials\.parquet is damaged \(not a readable parquet table") as err:
        read_table(tmp_path / "trials.parquet")
    assert "\n" not in str(err.value)
    with pytest.raises(UsageError, match="not found"):
        read_table(tmp_path / "nothing.parquet")


def test_a_torn_last_line_is_ignored_and_cut_before_the_next_append(tmp_path):
    log = tmp_path / "epochs.jsonl"
    for epoch in (1, 2):
        append_line(log, json.dumps({"epoch": epoch}))
    with open(log, "a") as f:
        f.write('{"epoch": 3, "train_lo')  # a kill in the middle of an append
    assert [r["epoch"] for r in read_lines(log)] == [1, 2]
    append_line(log, json.dumps({"epoch": 3}))  # the resumed trainer appends epoch 3 again
    assert [r["epoch"] for r in read_lines(log)] == [1, 2, 3] and log.read_text().count("\n") == 3
    log.write_text('{"epoch": 1}\nnot json\n{"epoch": 3}\n')  # damage inside the log is not a torn tail
    with pytest.raises(UsageError, match=r"epochs\.jsonl is damaged \(line 2 is not JSON\)"):
        read_lines(log)
    assert read_lines(tmp_path / "none.jsonl") == []


# ----------------------------------------------------------------------------- a damaged run folder, through the CLI

@pytest.fixture
def run_folder(tmp_path):
    """A small finished run folder written by the real writers."""
    from test_compare import _rows

    from ablate.results import analysis_of, write_run_json, write_tables

    def make(name, values=(80.0, 85.0, 78.0, 70.0, 75.0, 72.0)):
        folder = tmp_path / "results" / name
        folder.mkdir(parents=True)
        write_tables(folder, _rows(list(values)), pd.DataFrame())
        write_run_json(folder, {"command": "python run_ablation.py", "finished": "2026-12-01 12:00:00",
                                "trials_requested": 4, "wall_seconds": 60.0})
        analysis_of(folder)  # as a run's end saves it
        return folder
    return make


@pytest.mark.parametrize("damage", ["trials.parquet", "run.json", "summary.parquet", "predictions.parquet"])
def test_status_report_and_compare_on_a_damaged_run_answer_in_one_line(run_folder, capsys, damage):
    good, bad = run_folder("good"), run_folder("bad")
    data = (bad / damage).read_bytes()
    (bad / damage).write_bytes(data[: len(data) // 2])  # what a kill mid-write (without atomic writes) leaves
    commands = {"status": ["status", bad], "report": ["report", bad], "compare": ["compare", good, bad]}
    reads = {"trials.parquet": {"status", "report", "compare"}, "run.json": {"status", "report"},
             "summary.parquet": set(), "predictions.parquet": {"report"}}[damage]
    for name, argv in commands.items():
        code, out, err = run_cli(capsys, *argv)
        if name in reads:
            assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (name, err)
            assert err.startswith(f"error: {bad / damage} is damaged ("), (name, err)
        else:
            assert code == 0, (name, err)
