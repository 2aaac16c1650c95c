"""The report on a designed, replicated run: CIs in the leaderboard, OLS effects with verdicts, the noise floor,
the error EDFs, and the report of an old-style table (one seed, no phase) that cannot give CIs."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pandas as pd
import pytest
from test_report import SECTIONS, _run_json, _section, _table, _trials, _write_run

from ablate.report import build_report

# True additive effects (pp of val top-1) against relu / dwconv / width 1, the qlblock file's first choices.
EFFECTS = {"nonlinearity": {"relu": 0.0, "multiply": 3.0, "hardball": 0.0},
           "spatial": {"dwconv": 0.0, "maxpool": -2.0, "avgpool": -2.0, "twist": 0.0},
           "width": {1.0: 0.0, 2.0: 1.0, 4.0: 2.0}}
SPATIAL_MACS = {"dwconv": 4.0, "maxpool": 3.0, "avgpool": 3.0, "twist": 4.5}  # M MACs at width 1
BASELINES = {"ResNet50": ("relu-conv3x3-w0.25", 82.0, 10.0), "R50-max": ("relu-maxpool-w0.25", 78.0, 4.0),
             "R50-hybrid": ("relu-hybrid-w0.25", 85.5, 6.0)}
SEEDS, NOISE = (0, 1, 2), 0.4


def designed_trials(rng_seed: int = 7) -> pd.DataFrame:
    """The full 36-config grid once (seed 0, phase design), the best 3 again under seeds 1 and 2 (confirm), and
    the baselines under all 3 seeds: what a `--design grid --confirm 3 --seeds 3` run tabulates."""
    rng = np.random.default_rng(rng_seed)
    shift = {s: rng.normal(0, NOISE) for s in SEEDS}  # a seed's data order moves every model of that seed a bit

    def row(name, kind, config, top1, macs, seed, phase, axes):
        value = top1 + shift[seed] + rng.normal(0, NOISE)
        return {"kind": kind, "trial_id": f"{name}-s{seed}", "name": name, "config": config, **axes,
                "status": "completed", "reason": "", "epochs": 5, "val_top1": value, "test_top1": value - 0.3,
                "params": macs * 4e4, "macs": macs * 1e6, "elementwise_ops": macs * 1e4, "latency_ms": macs / 5,
                "throughput": 5000.0 / macs, "seed": seed, "phase": phase}

    rows = []
    for nl, sp, w in itertools.product(*(list(v) for v in EFFECTS.values())):
        top1 = 80.0 + EFFECTS["nonlinearity"][nl] + EFFECTS["spatial"][sp] + EFFECTS["width"][w]
        name = f"{nl}-{sp}-w{w:g}"
        rows.append(row(name, "candidate", name, top1, SPATIAL_MACS[sp] * w, 0, "design",
                        {"nonlinearity": nl, "spatial": sp, "width": w}))
    top3 = sorted(rows, key=lambda r: -r["val_top1"])[:3]
    for best, seed in itertools.product(top3, SEEDS[1:]):
        top1 = best["val_top1"] - shift[0]
        rows.append(row(best["name"], "candidate", best["config"], top1, best["macs"] / 1e6, seed, "confirm",
                        {a: best[a] for a in EFFECTS}))
    for (name, (config, top1, macs)), seed in itertools.product(BASELINES.items(), SEEDS):
        nl, sp, w = config.split("-")
        rows.append(row(name, "baseline", config, top1, macs, seed, "design" if seed == 0 else "confirm",
                        {"nonlinearity": nl, "spatial": sp, "width": float(w[1:])}))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def designed(tmp_path_factory):
    meta = _run_json(space={"name": "qlblock", "axes": ["nonlinearity", "spatial", "width"]}, design="grid",
                     confirm=3, seeds=3, data={"train": 1000, "val": 300, "test": 360})
    out = build_report(_write_run(tmp_path_factory.mktemp("run") / "designed", designed_trials(), meta))
    return out, out.markdown.read_text()


def _findings(markdown: str) -> list[str]:
    return [ln[2:] for ln in _section(markdown, "Findings").splitlines() if ln.startswith("- ")]


def test_leaderboard_has_one_row_per_config_with_cis(designed):
    _, md = designed
    board = _table(_section(md, SECTIONS[1])).set_index("name")
    assert len(board) == 36 + 3 and board.index.is_unique
    confirmed = board[board["n seeds"] == "3"]
    assert len(confirmed) == 6 and set(BASELINES) <= set(confirmed.index)
    assert all(re.fullmatch(r"\[\d+\.\d\d, \d+\.\d\d\]", ci) for ci in confirmed["val 95 % CI"])
    assert all(re.fullmatch(r"\[[+-]\d+\.\d\d, [+-]\d+\.\d\d\]", ci)
               for ci in confirmed.drop(index="ResNet50")["Δ 95 % CI"])
    assert (board.loc[board["n seeds"] == "1", "val 95 % CI"] == "—").all()
    assert set(confirmed["phase"]) == {"design+confirm"}
    # Δ at equal MACs: the baselines' front spans 4–6 M MACs (ResNet50 at 10 M is dominated by R50-hybrid)
    assert board.loc["relu-dwconv-w1", "Δ at equal MACs (pp)"] != "outside range"
    assert board.loc["relu-dwconv-w4", "Δ at equal MACs (pp)"] == "outside range"


def test_findings_name_the_winner_or_say_no_clear_difference(designed):
    _, md = designed
    text = " ".join(_findings(md))
    assert re.search(r"nonlinearity: `multiply` vs `relu` \(reference\), additive OLS over 42 full-budget "
                     r"candidate rows: \+[23]\.\d\d pp val top-1 \(95 % CI \[\+\d\.\d\d, \+\d\.\d\d\], "
                     r"n = \d+ vs \d+ rows\) — `multiply` is better\.", text)
    assert re.search(r"nonlinearity: `hardball` vs `relu` \(reference\), .*? \(95 % CI \[-\d\.\d\d, \+\d\.\d\d\], "
                     r"n = 12 vs \d+ rows\) — no clear difference\.", text)
    assert re.search(r"spatial: `maxpool` vs `dwconv` \(reference\), .*? — `dwconv` is better\.", text)
    best = re.search(r"Best candidate `([\w.-]+)` reached", text).group(1)
    assert best.startswith("multiply-")
    assert re.search(rf"`{best}` vs R50-max: paired Δ \+\d\.\d\d pp val top-1 \(95 % CI \[\+\d\.\d\d, \+\d\.\d\d\] pp, "
                     rf"n = 3 paired seeds\) — `{best}` is better\.", text)
    assert re.search(rf"`{best}` vs R50-hybrid: paired Δ .*? — no clear difference\.", text)


def test_every_finding_carries_estimate_ci_and_n(designed):
    _, md = designed
    for sentence in _findings(md):
        assert re.search(r"n = \d+", sentence), sentence
        assert "95 % CI" in sentence or "cannot give a CI" in sentence or "p < 0.001" in sentence \
            or "p = " in sentence, sentence


def test_noise_floor_in_the_header(designed):
    _, md = designed
    run = _section(md, "Run")
    trials = designed_trials()
    p = trials["val_top1"].mean() / 100
    se = 100 * math.sqrt(p * (1 - p) / 300)
    assert f"over n_val = 300 validation images: {se:.2f} pp" in run
    within = trials.groupby("name")["val_top1"].agg(["var", "size"])
    within = within[within["size"] >= 2]
    pooled = math.sqrt((within["var"] * (within["size"] - 1)).sum() / (within["size"] - 1).sum())
    assert f"{pooled:.2f} pp (pooled over 6 configs with ≥ 2 seeds, n = 18 rows, 12 df)" in run
    assert "Design: grid; confirmation: best 3 candidates and the baselines under 3 training seeds" in run


def test_effects_and_edf_figures(designed):
    out, md = designed
    names = {p.name for p in out.figures}
    assert {"axis_effects.png", "error_edf.png"} <= names
    assert "from one additive OLS over 42 full-budget candidate rows" in md
    assert "each model weighted by 1 / (its choice's density of log MACs" in md
    assert "Not drawn where" not in md
    page = out.html.read_text()
    assert "http" not in page and page.count('src="data:image/png;base64,') == len(out.figures) == 6


def test_old_style_table_gives_no_cis(tmp_path):
    trials = _trials().drop(columns=["seed"])
    md = build_report(_write_run(tmp_path / "old", trials, _run_json())).markdown.read_text()
    board = _table(_section(md, SECTIONS[1]))
    assert (board["n seeds"] == "1").all() and (board["val 95 % CI"] == "—").all()
    assert (board["Δ 95 % CI"] == "—").all() and (board["phase"] == "—").all()
    assert board.set_index("name").loc["R50-max", "Δtop-1 vs ResNet50 (pp)"] == "-2.00"
    findings = _findings(md)
    assert "`multiply-dwconv-w4` vs ResNet50: paired Δ +3.50 pp val top-1 (n = 1 paired seed: n = 1 cannot give a " \
           "CI) — no verdict without a CI." in findings
    assert "seed-to-seed std: not measured" in _section(md, "Run")
    assert "binomial SE of val top-1: unknown" in _section(md, "Run")
    assert re.search(r"Skipped: an error EDF per axis needs at least 8 full-budget rows for every choice; rows per "
                     r"choice: nonlinearity: (\w+ \d, ){2}\w+ \d; spatial", md)
