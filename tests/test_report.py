"""Tests of the generated comparison report (ablate.report) on results folders written here, not by a real run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from ablate import cli
from ablate.core.errors import UsageError
from ablate.report import ReportOutputs, build_report, pareto_mask

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SECTIONS = ("Run", "Leaderboard (measured in this run)", "Pruned and failed trials",
            "Published reference numbers (ImageNet, from the papers — not measured here)", "Figures", "Findings",
            "Answers")

# name, kind, status, val_top1, macs (M), latency (ms), reason, epochs
ROWS = [
    ("multiply-dwconv-w4", "candidate", "completed", 80.5, 30.0, 2.6, "", 5),
    ("hardball-twist-w2", "candidate", "completed", 79.0, 20.0, 2.2, "", 5),
    ("relu-dwconv-w1", "candidate", "completed", 78.0, 12.0, 1.5, "", 5),
    ("hardball-maxpool-w4", "candidate", "completed", 77.2, 25.0, 1.2, "", 5),
    ("multiply-maxpool-w1", "candidate", "completed", 76.5, 8.0, 1.1, "", 5),
    ("relu-avgpool-w0.25", "candidate", "completed", 74.0, 5.0, 0.9, "", 5),
    ("relu-twist-w2", "candidate", "pruned", 50.0, 18.0, 1.9, "", 2),
    ("multiply-avgpool-w0.25", "candidate", "failed", np.nan, np.nan, np.nan, "RuntimeError: out of memory", 1),
    ("R50-hybrid", "baseline", "completed", 78.5, 22.0, 2.0, "", 5),
    ("ResNet50", "baseline", "completed", 77.0, 40.0, 3.0, "", 5),
    ("R50-max", "baseline", "completed", 75.0, 15.0, 1.4, "", 5),
]
# More full-budget candidates, all dominated (below 74 % and above 5 M MACs, so the Pareto front stays as worked out
# below), that make the additive model of the three axes estimable: 12 candidates for 9 parameters.
DESIGN_ROWS = [
    ("relu-twist-w4", "candidate", "completed", 71.0, 26.0, 2.4, "", 5),
    ("multiply-avgpool-w2", "candidate", "completed", 72.5, 14.0, 1.3, "", 5),
    ("hardball-dwconv-w0.25", "candidate", "completed", 70.5, 6.0, 1.0, "", 5),
    ("multiply-twist-w1", "candidate", "completed", 73.5, 10.0, 1.2, "", 5),
    ("hardball-avgpool-w1", "candidate", "completed", 69.0, 9.0, 1.0, "", 5),
    ("relu-maxpool-w2", "candidate", "completed", 72.0, 16.0, 1.6, "", 5),
]
REPORT_ROWS = ROWS + DESIGN_ROWS
BASELINE_CONFIGS = {"ResNet50": "relu-conv3x3-w0.25", "R50-max": "relu-maxpool-w0.25",
                    "R50-hybrid": "relu-hybrid-w0.25"}
# Pareto front of val_top1 (max) vs MACs (min) over the completed rows above, worked out by hand.
PARETO_MACS = {"relu-avgpool-w0.25", "multiply-maxpool-w1", "relu-dwconv-w1", "hardball-twist-w2",
               "multiply-dwconv-w4"}


def _trials(rows=ROWS) -> pd.DataFrame:
    records = []
    for i, (name, kind, status, top1, macs, latency, reason, epochs) in enumerate(rows):
        config = BASELINE_CONFIGS.get(name, name)
        nonlin, spatial, width = config.split("-")
        done = status == "completed"
        records.append({
            "kind": kind, "trial_id": f"baseline-{name}" if kind == "baseline" else f"trial_{i:03d}", "name": name,
            "config": config, "config_hash": f"h{i}", "nonlinearity": nonlin, "spatial": spatial,
            "width": float(width[1:]), "status": status, "reason": reason, "epochs": epochs, "val_top1": top1,
            "val_top5": top1 + 15 if done else np.nan, "val_loss": 0.5, "test_top1": top1 - 0.4 if done else np.nan,
            "delta_top1": top1 - 77.0, "params": macs * 4e4, "macs": macs * 1e6, "elementwise_ops": macs * 1e4,
            "activations": 1e5, "latency_ms": latency, "throughput": 1000.0 / latency if latency == latency else np.nan,
            "train_seconds": 12.0, "seed": 0, "phase": "design"})
    return pd.DataFrame(records)


def _curves(trials: pd.DataFrame) -> pd.DataFrame:
    rows = [{"trial_id": t.trial_id, "epoch": e, "train_loss": 2.0 / e, "val_loss": 2.1 / e,
             "val_top1": t.val_top1 * (0.6 + 0.08 * e), "val_top5": 90.0, "lr": 0.1, "epoch_seconds": 2.0,
             "images_per_second": 500.0}
            for t in trials.itertuples() if t.val_top1 == t.val_top1 for e in range(1, int(t.epochs) + 1)]
    return pd.DataFrame(rows)


def _run_json(**overrides) -> dict:
    meta = {"command": "python run_ablation.py --space qlblock --trials 8 --seed 0", "space": "qlblock",
            "protocol": {"name": "digits-fast", "dataset": "digits", "epochs": 5, "batch_size": 64,
                         "optimizer": "sgd", "schedule": "cosine"},
            "objectives": [{"metric": "top1", "column": "val_top1", "direction": "maximize"}],
            "sampler": "TPESampler", "seed": 0,
            "trials_requested": 8, "versions": {"torch": "2.15.0", "optuna": "5.0.0", "python": "3.11.7"},
            "hardware": {"cpu": "test-cpu", "gpu": None, "gpu_count": 0, "device": "cpu"},
            "started": "2025-01-01T00:00:00", "finished": "2025-01-01T00:10:00", "wall_seconds": 600.5}
    meta.update(overrides)
    return meta


def _write_run(directory: Path, trials: pd.DataFrame, meta: dict | None = None, curves: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    trials.to_parquet(directory / "trials.parquet")
    if curves:
        _curves(trials).to_parquet(directory / "curves.parquet")
    if meta is not None:
        (directory / "run.json").write_text(json.dumps(meta))
    return directory


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> ReportOutputs:
    return build_report(_write_run(tmp_path_factory.mktemp("run") / "demo", _trials(REPORT_ROWS), _run_json()))


def _section(markdown: str, heading: str) -> str:
    return markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def _tables(section: str) -> list[pd.DataFrame]:
    """Every markdown table of a section, in order."""
    tables, block = [], []
    for line in section.splitlines() + [""]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip("|").split(" | ")])
        elif block:
            tables.append(pd.DataFrame(block[2:], columns=block[0]))
            block = []
    return tables


def _table(section: str) -> pd.DataFrame:
    return _tables(section)[0]


def test_documents_carry_every_section(report):
    md, page = report.markdown.read_text(), report.html.read_text()
    for heading in SECTIONS:
        assert f"## {heading}\n" in md
        assert f"<h2>{heading}</h2>" in page
    assert md.index("## Answers\n") < md.index("## Run\n")  # the answers right under the title
    assert "python run_ablation.py --space qlblock --trials 8 --seed 0" in md
    assert "12 completed, 1 pruned, 1 failed" in md and "digits" in md and "10 min 0 s" in md


def test_leaderboard_rows_match_the_table(report):
    board, costs = _tables(_section(report.markdown.read_text(), SECTIONS[1]))
    done = _trials(REPORT_ROWS).query("status == 'completed'").sort_values("test_top1", ascending=False)
    assert board["name"].tolist() == done["name"].tolist() == costs["name"].tolist()
    top = board.iloc[0]
    # one run seed and no per-image record: the plain numbers, no interval (nothing to judge them with)
    assert (top["selection: val top-1 (%)"], top["test top-1 (%)"], top["test 95 % CI"], top["seeds"]) == \
        ("80.50", "80.10", "—", "1 (run seed)")
    assert top["Δ vs ResNet50 (pp)"] == "+3.50"
    assert top["Δ at equal MACs (pp)"] == "+2.00 vs R50-hybrid"  # 30 M: R50-hybrid (22 M) is the best affordable
    assert board.set_index("name").loc["relu-avgpool-w0.25", "Δ at equal MACs (pp)"] == "cheaper than every baseline"
    cost = costs.iloc[0]
    assert (cost["MACs (M)"], cost["params (M)"], cost["latency (ms)"], cost["throughput (img/s)"]) == \
        ("30.00", "1.20", "2.60", "385")
    assert board.set_index("name").loc["R50-max", "Δ vs ResNet50 (pp)"] == "-2.00"
    assert set(board.loc[board["pareto"] == "★", "name"]) == PARETO_MACS
    assert set(board["kind"]) == {"candidate", "baseline"}


def test_unfinished_trials_listed_separately(report):
    md = report.markdown.read_text()
    rest = _table(_section(md, SECTIONS[2])).set_index("name")
    assert rest.loc["multiply-avgpool-w0.25", "reason"] == "RuntimeError: out of memory"
    assert rest.loc["relu-twist-w2", "epochs"] == "2"
    assert "relu-twist-w2" not in _section(md, SECTIONS[1])


def test_pareto_mask_hand_made_with_ties():
    df = pd.DataFrame({"acc": [1.0, 1.0, 1.0, 2.0, 2.0, 0.5, 3.0, 2.0, 0.4],
                       "cost": [1.0, 1.0, 2.0, 2.0, 3.0, 0.5, np.nan, 2.0, 0.5]},
                      index=list("abcdefghi"))
    mask = pareto_mask(df, maximize="acc", minimize="cost")
    assert mask.dtype == bool and list(mask.index) == list(df.index)
    # a/b and d/h are exact ties (both kept); c loses to a on cost, e to d, i to f on accuracy; g has no cost.
    assert set(mask[mask].index) == {"a", "b", "d", "f", "h"}


def test_figures_are_valid_pngs(report):
    names = {p.name for p in report.figures}
    # no two of the 12 configs differ in one axis alone often enough for a main effect: that figure is skipped
    assert names == {"accuracy_vs_macs.png", "accuracy_vs_latency.png", "learning_curves.png", "param_importance.png"}
    for path in report.figures:
        assert path.parent.name == "figures" and path.read_bytes()[:8] == PNG_MAGIC
        image = mpimg.imread(path)
        assert image.shape[0] > 200 and image.shape[1] > 300 and image.std() > 0.01
    md = report.markdown.read_text()
    assert md.count("](figures/") == 4 and "FanovaImportanceEvaluator(seed=0)" in md
    assert "Skipped: no effect is estimable from 12 candidate configs" in md


def test_html_is_self_contained(report):
    page = report.html.read_text()
    for needle in ("http://", "https://", 'src="//', "<script", "<link"):
        assert needle not in page
    assert page.count('src="data:image/png;base64,') == 4


def test_published_table_is_labelled_and_separate(report):
    md = report.markdown.read_text()
    published = _section(md, SECTIONS[3])
    assert "not measured here" in SECTIONS[3]
    table = _table(published)
    assert {"R50", "R50-max", "R50-hybrid", "qlnet-10m"} <= set(table["model"])
    assert "76.2" in set(table["top-1 (%)"])
    assert "qlnet-10m" not in _section(md, SECTIONS[1]) and "80.50" not in published


def _items(markdown: str, heading: str) -> list[str]:
    return [ln[2:] for ln in _section(markdown, heading).splitlines() if ln.startswith("- ")]


def test_verdicts_and_findings_each_hold_a_number(report):
    md = report.markdown.read_text()
    verdicts, findings = _items(md, "Answers"), _items(md, "Findings")
    assert all(re.search(r"\d", sentence) for sentence in verdicts + findings)
    text = " ".join(verdicts)
    # main effects need configs that differ in one axis alone (≥ 3 such pairs); these 12 hold too few, and no
    # candidate was confirmed: no verdict-bearing comparison, and each effect says why it is not estimable
    assert text.startswith("No verdict-bearing comparison")
    text = " ".join(findings)
    assert re.search(r"nonlinearity: `multiply` vs `relu`: not estimable — only \d matched pairs? \(configs differing "
                     r"in nonlinearity alone; needs ≥ 3\)", text)
    assert "`multiply-dwconv-w4` came first at 80.50 %" in text and "judges nothing" in text
    assert "No candidate was retrained under fresh seeds" in text
    assert "Cheapest Pareto-optimal candidate: `relu-avgpool-w0.25` at 5.00 M MACs" in text


def test_single_completed_trial_builds(tmp_path):
    rows = [ROWS[0], ROWS[7]]
    out = build_report(_write_run(tmp_path / "one", _trials(rows), meta=None))
    md = out.markdown.read_text()
    assert [p.name for p in out.figures] == ["learning_curves.png"]
    assert md.count("Skipped:") == 5 and all(h in md for h in SECTIONS)  # 2 scatters, effects, EDF, importance
    assert "No verdict-bearing comparison" in _section(md, "Answers")
    assert "http" not in out.html.read_text()


def test_run_without_curves_or_run_json(tmp_path):
    out = build_report(_write_run(tmp_path / "bare", _trials(), meta=None, curves=False))
    assert "learning_curves.png" not in {p.name for p in out.figures}
    assert "Skipped: curves.parquet is missing" in out.markdown.read_text()


def test_multi_objective_run(tmp_path):
    objectives = [{"metric": "top1", "column": "val_top1", "direction": "maximize"},
                  {"metric": "latency", "column": "latency_ms", "direction": "minimize"}]
    trials = _trials()
    out = build_report(_write_run(tmp_path / "mo", trials, _run_json(objectives=objectives)))
    md = out.markdown.read_text()
    assert "maximize top1; minimize latency (multi-objective)" in md
    done = trials[trials["status"] == "completed"]
    expected = set(done.loc[pareto_mask(done, "test_top1", "latency_ms"), "name"])
    board = _table(_section(md, SECTIONS[1]))
    assert set(board.loc[board["pareto"] == "★", "name"]) == expected != PARETO_MACS


def test_empty_run_is_a_usage_error(tmp_path, capsys):
    empty = _write_run(tmp_path / "empty", _trials()[:0], _run_json(), curves=False)
    with pytest.raises(UsageError, match="nothing to report in .*no completed trials"):
        build_report(empty)
    only_failed = _write_run(tmp_path / "failed", _trials([ROWS[6], ROWS[7]]), _run_json())
    assert cli.main(["report", str(only_failed)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: nothing to report in") and err.count("\n") == 1


def test_missing_folder_or_table_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(UsageError, match="does not exist"):
        build_report(tmp_path / "nope")
    (tmp_path / "no_table").mkdir()
    assert cli.main(["report", str(tmp_path / "no_table")]) == 2
    assert "trials.parquet not found" in capsys.readouterr().err


def test_extra_axis_and_urls_stay_out_of_html(tmp_path):
    trials = _trials().assign(post_act=["bn", "none"] * 5 + ["bn"])
    trials.loc[trials["status"] == "failed", "reason"] = "see https://example.org/issue for the traceback"
    meta = _run_json(command="python run_ablation.py --storage http://db.local:5432/optuna")
    out = build_report(_write_run(tmp_path / "extra", trials, meta))
    md, page = out.markdown.read_text(), out.html.read_text()
    assert re.search(r"^- post_act: `\w+` vs `\w+`: not estimable — ", md, flags=re.M)  # an axis of its own
    assert "--storage http://db.local:5432/optuna" in md and "example.org" not in md
    assert "http://" not in page and "https://" not in page and "--storage http:" in page


def test_a_number_that_rounds_to_zero_is_never_written_minus_zero():
    from ablate.report.data import fmt
    from ablate.report.findings import interval_text

    assert [fmt(-0.001, "{:+.2f}"), fmt(-0.004), fmt(-0.0001, "{:.1%}"), fmt(-0.4, "{:,.0f}")] == \
        ["+0.00", "0.00", "0.0%", "0"]
    assert [fmt(-0.02, "{:+.2f}"), fmt(-1234.0, "{:,.0f}")] == ["-0.02", "-1,234"]
    assert interval_text(-0.001, 3.35) == "95 % CI [+0.00, +3.35]"
