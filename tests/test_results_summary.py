"""ablate.results: the phase column, Δtop-1 paired by seed, summary.parquet/.csv and load(run, summary=True)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ablate.analysis import SUMMARY_COLUMNS, summarize
from ablate.core.errors import UsageError
from ablate.core.schema import PREDICTION_COLUMNS, TRIAL_COLUMNS
from ablate.records import encode_hits
from ablate.results import load, prediction_frame, write_tables

SUMMARIZE = summarize


def _rows() -> list[dict]:
    rows = []
    for seed, (cand, ref) in enumerate([(80.0, 77.0), (81.0, 78.0)]):
        phase = "design" if seed == 0 else "confirm"
        rows += [{"kind": "candidate", "trial_id": f"c{seed}", "name": "relu-dwconv-w1", "config": "relu-dwconv-w1",
                  "nonlinearity": "relu", "spatial": "dwconv", "width": 1.0, "post_act": "bn", "status": "completed",
                  "val_top1": cand, "test_top1": cand - 1, "seed": seed, "phase": phase, "macs": 2e6},
                 {"kind": "baseline", "trial_id": f"b{seed}", "name": "ResNet50", "config": "relu-conv3x3-w0.25",
                  "status": "completed", "val_top1": ref, "test_top1": ref - 1, "seed": seed, "phase": phase,
                  "macs": 4e6}]
    rows.append({"kind": "candidate", "trial_id": "p", "name": "relu-twist-w2", "status": "pruned", "val_top1": 50.0,
                 "seed": 0, "phase": "search"})
    return rows


def test_write_tables_writes_the_tables_and_load_analyses_them_once(tmp_path, monkeypatch):
    import ablate.analysis.pipeline as pipeline

    table = write_tables(tmp_path, _rows(), pd.DataFrame())
    assert TRIAL_COLUMNS.index("phase") == TRIAL_COLUMNS.index("seed") + 1 and list(table.columns)[-1] == "post_act"
    assert table["delta_top1"].tolist()[:4] == [3.0, 0.0, 3.0, 0.0]  # paired with ResNet50 of the same seed
    tables = ["curves.parquet", "predictions.parquet", "trials.csv", "trials.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == tables  # a filing writes no analysis (no temp file left)
    passes = []
    monkeypatch.setattr(pipeline, "summarize", lambda *a, **k: passes.append(1) or SUMMARIZE(*a, **k))
    summary = load(tmp_path, summary=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*tables, "analysis.json", "effects.parquet",
                                                                 "summary.csv", "summary.parquet", "verdicts.parquet"])
    assert load(tmp_path, summary=True).equals(summary) and len(passes) == 1  # read back, not analysed again
    assert summary["name"].tolist() == ["relu-dwconv-w1", "ResNet50"]
    assert set(SUMMARY_COLUMNS) | {"nonlinearity", "spatial", "width", "post_act"} == set(summary.columns)
    cand = summary.iloc[0]
    # no per-image record here: the evidence is the confirmation seed's plain number, Δ its plain difference
    assert (cand["n"], cand["n_confirm"], cand["delta_mean"], cand["post_act"]) == (2, 1, 3.0, "bn")
    assert cand["selection_val_top1"] == 80.0
    assert pd.read_csv(tmp_path / "summary.csv")["n"].tolist() == [2, 2]
    assert len(load(tmp_path)) == 5
    write_tables(tmp_path, _rows()[:-1], pd.DataFrame())  # the tables change: the next read analyses them again
    assert len(load(tmp_path, summary=True)) == 2 and len(passes) == 2 and len(load(tmp_path)) == 4


def test_a_summary_of_no_run_is_a_one_line_usage_error(tmp_path):
    with pytest.raises(UsageError, match=r"^no results table at .*trials\.parquet: run an ablation first") as err:
        load(tmp_path, summary=True)
    assert "\n" not in str(err.value)


def test_in_progress_tables_summarise_what_is_there(tmp_path):
    write_tables(tmp_path, [_rows()[-1]], pd.DataFrame())  # only a pruned trial so far: an empty summary
    assert load(tmp_path, summary=True).empty


def test_per_image_evidence_is_written_with_its_rows_and_loaded_back(tmp_path):
    rows = _rows()
    hits = np.array([True, False, True, True])
    predictions = pd.concat([prediction_frame({"val": hits, "test": encode_hits(~hits)}, row) for row in rows])
    write_tables(tmp_path, rows, pd.DataFrame(), predictions)
    loaded = load(tmp_path, predictions=True)
    assert list(loaded.columns) == PREDICTION_COLUMNS
    assert set(loaded["trial_id"]) == {"c0", "b0", "c1", "b1"}  # the pruned trial's evidence is not kept
    one = loaded[(loaded["trial_id"] == "c1") & (loaded["split"] == "test")]
    assert one["correct"].tolist() == [False, True, False, False] and one["image"].tolist() == [0, 1, 2, 3]
    assert (one["seed"].iloc[0], one["phase"].iloc[0], one["name"].iloc[0]) == (1, "confirm", "relu-dwconv-w1")
    with pytest.raises(UsageError, match="not both"):
        load(tmp_path, summary=True, predictions=True)


def test_an_analysis_saved_after_the_tables_changed_is_not_taken_for_theirs(tmp_path):
    """A report read the tables, a filing rewrote them, then the report saved its analysis: that analysis is
    stamped with what the report read, so the next reader analyses the new tables instead of taking it."""
    from ablate.report import load_run

    rows = _rows()
    write_tables(tmp_path, rows[:2], pd.DataFrame())  # seed 0's candidate and ResNet50
    run = load_run(tmp_path)
    write_tables(tmp_path, rows, pd.DataFrame())  # the rest filed meanwhile
    assert run.summary["n"].tolist() == [1, 1]  # the report's analysis of what it read, saved as it is computed
    assert load(tmp_path, summary=True)["n"].tolist() == [2, 2]


def test_a_summary_of_a_folder_this_user_cannot_write_is_analysed_not_saved(tmp_path, monkeypatch):
    import errno

    import ablate.analysis.pipeline as pipeline

    write_tables(tmp_path, _rows(), pd.DataFrame())

    def refuse(run_dir, analysis, stamp, code=errno.EROFS):
        raise OSError(code, "Read-only file system")

    monkeypatch.setattr(pipeline, "save_analysis", refuse)
    assert load(tmp_path, summary=True)["n"].tolist() == [2, 2]
    monkeypatch.setattr(pipeline, "save_analysis", lambda *a: refuse(*a, code=errno.ENOSPC))
    with pytest.raises(OSError, match="Read-only"):  # a full disk is not taken for a read-only folder
        load(tmp_path, summary=True)
