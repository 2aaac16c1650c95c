"""`python run_ablation.py compare results/A results/B`: rank agreement of two runs, its figure, its errors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from ablate.results import write_tables

NAMES = ["relu-dwconv-w1", "multiply-dwconv-w4", "hardball-twist-w2", "relu-maxpool-w2", "ResNet50", "R50-max"]


def _rows(top1: list[float]) -> list[dict]:
    return [{"kind": "baseline" if name[0].isupper() else "candidate", "trial_id": f"t{i}", "name": name,
             "config": name, "status": "completed", "val_top1": value, "macs": 1e6 * (i + 1), "seed": 0,
             "phase": "design"} for i, (name, value) in enumerate(zip(NAMES, top1))]


@pytest.fixture
def runs(tmp_path):
    def make(name: str, top1: list[float]):
        folder = tmp_path / "results" / name
        folder.mkdir(parents=True)
        write_tables(folder, _rows(top1), pd.DataFrame())
        return folder
    return make


def test_identical_runs_agree_perfectly(runs, capsys, tmp_path):
    values = [80.0, 85.0, 78.0, 70.0, 75.0, 72.0]
    a, b = runs("A", values), runs("B", values)
    code, out, _ = run_cli(capsys, "compare", a, b)
    assert code == 0
    assert "Kendall τ (all configs) = +1.000 (p = " in out and "Spearman ρ (all configs) = +1.000 (p = " in out
    assert "Kendall τ (all configs) = +1.000 (p = 0.00278), bootstrap 95 % CI [+1.00, +1.00], n = 6" in out
    assert "Kendall τ (candidates only) = +1.000 (p = 0.0833), n = 4" in out  # 4 items: too few for a bootstrap
    assert "top-5 overlap: 5 of 5" in out
    folder = tmp_path / "results" / "compare-A-vs-B"
    assert (folder / "scatter.png").read_bytes()[:4] == b"\x89PNG"
    shared = pd.read_csv(folder / "shared.csv")
    assert list(shared.columns) == ["name", "val_top1_A", "val_top1_B"] and len(shared) == 6


def test_reversed_runs_disagree_perfectly(runs, capsys, tmp_path):
    values = np.array([80.0, 85.0, 78.0, 70.0, 75.0, 72.0])
    a, b = runs("A", list(values)), runs("B", list(200 - values))
    code, out, _ = run_cli(capsys, "compare", a, b, "--out", tmp_path / "cmp", "--top-k", "2")
    assert code == 0 and "Kendall τ (all configs) = -1.000" in out and "Spearman ρ (all configs) = -1.000" in out
    assert "top-2 overlap: 0 of 2" in out and (tmp_path / "cmp" / "scatter.png").is_file()


def test_bad_input_is_one_line_and_exit_2(runs, capsys, tmp_path):
    a = runs("A", [80.0, 85.0, 78.0, 70.0, 75.0, 72.0])
    code, out, err = run_cli(capsys, "compare", a, tmp_path / "nowhere")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert re.match(r"error: no results table at .*nowhere/trials\.parquet", err)
    few = tmp_path / "results" / "few"
    few.mkdir()
    write_tables(few, _rows([80.0, 85.0]), pd.DataFrame())
    code, _, err = run_cli(capsys, "compare", a, few)
    assert code == 2 and err == "error: A and few share 2 completed configs; a rank correlation needs at least 3\n"
    code, _, err = run_cli(capsys, "compare", a)
    assert code == 2 and err.startswith("error: the following arguments are required: run_b "
                                        "(see python run_ablation.py compare --help)")
