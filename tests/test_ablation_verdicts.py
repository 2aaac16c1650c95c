"""The ablation design's table survives the null, states an honest detectable difference, and its intervals cover —
proved by simulating the default ablation (``tests/simulated_runs.simulate_ablation``: qlblock's reference block
multiply-dwconv-w2 and its 7 one-axis variants and the 3 baselines, each under the default seeds, per-image hits on
359 test images with digits' seed noise, each config with its own seed SD over 1 : 6) and pushing each through the
report's own statistics and sentences.

Sized to the bounds they prove (binomial tolerances): the null, 100 runs, at most 5 reports that say anything is
better (≤ α = 5 %): a procedure that errs in 15 % of runs (three times α) passes with probability 0.2 %, one at 2 %
fails with probability 1.5 %; the power, 100 runs at the stated difference, 80 ± 10 % (2.5 binomial SE; a statement
so small that it has 60 % power passes with probability 2.5 %); the coverage, 60 runs × 10 intervals, ≥ 93 % of
nominal 95 %."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from simulated_runs import Population, ablation_meta, check_null, simulate_ablation, simulated_report_run, stated_size

from ablate.report.findings import verdict_lines
from ablate.report.tables import ablation_table

NULL_RUNS = 100
POWER_RUNS = 100
COVERAGE_RUNS = 60
SEED_SD_RATIO = 6.0
VARIANT = "multiply-twist-w2"  # the row the power runs give a real effect


def _report(rng, population):
    run = simulated_report_run(*simulate_ablation(rng, population), ablation_meta())
    gc.freeze()  # statsmodels' Holm calls gc.collect() on every family: let it walk only what is new since
    return run, verdict_lines(run)


def _null_batch(seed: int, runs: int) -> list[int]:
    gc.freeze()
    rng = np.random.default_rng(seed)
    return [sum(" is better than " in line for line in _report(rng, Population(seed_sd_ratio=SEED_SD_RATIO))[1])
            for _ in range(runs)]


def _power_batch(seed: int, runs: int, effect_pp: float) -> list[tuple[bool, float]]:
    """Runs in which the twist variant is ``effect_pp`` worse than the reference: found, and the stated detectable
    difference of its row."""
    gc.freeze()
    rng, out = np.random.default_rng(500 + seed), []
    for _ in range(runs):
        population = Population(seed_sd_ratio=SEED_SD_RATIO)
        population.config_effects[VARIANT] = population.shift_for(-effect_pp)
        run, lines = _report(rng, population)
        row = run.verdicts[(run.verdicts["kind"] == "ablation") & (run.verdicts["a"] == VARIANT)]
        found = any(line.startswith(f"`multiply-dwconv-w2` is better than `{VARIANT}`") for line in lines)
        out.append((found, float(row["detectable"].iloc[0])))
    return out


def test_the_report_opens_with_the_ablation_table():
    run, lines = _report(np.random.default_rng(0), Population())
    table = ablation_table(run)
    assert table["comparison"].tolist()[:1] == ["reference"] and len(table) == 1 + 7 + 3
    assert sorted(table["comparison"][1:8]) == sorted(
        ["nonlinearity: multiply → relu", "nonlinearity: multiply → hardball", "spatial: dwconv → maxpool",
         "spatial: dwconv → avgpool", "spatial: dwconv → twist", "width: 2 → 1", "width: 2 → 4"])
    assert set(table["comparison"][8:]) == {"reference vs ResNet50", "reference vs R50-max", "reference vs R50-hybrid"}
    assert run.verdicts.attrs["family_size"] == 10 and set(run.verdicts["kind"]) == {"ablation", "reference"}
    assert all(cell.count("[") == 1 for cell in table["Δ top-1 (pp)"][1:])  # every row has an interval
    assert lines[-1].startswith("Smallest difference this run could detect") and "ablation row ≈ " in lines[-1]


@pytest.mark.slow
def test_under_the_null_at_most_5_percent_of_ablation_reports_say_anything_is_better(parallel):
    check_null(parallel(_null_batch, NULL_RUNS), NULL_RUNS)


@pytest.mark.slow
def test_an_ablation_rows_stated_detectable_difference_has_80_percent_power(parallel):
    size = stated_size(parallel, _power_batch)
    assert 2.0 < size < 10.0, size
    found = np.mean([f for f, _ in parallel(_power_batch, POWER_RUNS, size)])
    assert 0.70 <= found <= 0.90, (size, found)  # 80 ± 10 %


@pytest.mark.slow
def test_ablation_intervals_cover_the_true_differences():
    rng = np.random.default_rng(9)
    covered = []
    gc.freeze()
    for _ in range(COVERAGE_RUNS):
        population = Population(seed_sd_ratio=SEED_SD_RATIO)
        population.config_effects.update({"multiply-twist-w2": population.shift_for(3.0),
                                          "hardball-dwconv-w2": population.shift_for(-5.0)})
        run = simulated_report_run(*simulate_ablation(rng, population), ablation_meta())
        truth = {name: population.top1(skill) for name, skill in population.skills.items()}
        for row in run.verdicts.itertuples():
            covered.append(row.ci_low <= truth[row.a] - truth[row.b] <= row.ci_high)
    assert np.mean(covered) >= 0.93, np.mean(covered)
