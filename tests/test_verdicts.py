"""Factorial designs' verdicts survive the null, with honest power, intervals that cover and confirmed means without
a winner's curse — proved by simulating hundreds of runs (``tests/simulated_runs.py``: the full qlblock grid of 36
configs, or a balanced design of 12, the best 3 and the 3 baselines retrained under the default fresh seeds,
per-image hits on 302 val / 359 test images with digits' seed noise, each config with its own seed SD spread over
1 : 6 as measured on digits) and pushing each through the report's own statistics and sentences
(``ablate.report.findings.verdict_lines`` on an ``ablate.report.data.Run``): matched-pair main effects, the best
candidate against each baseline and at equal MACs, one Holm family. The ablation design has its own:
``tests/test_ablation_verdicts.py``.

Sized to the bounds they prove (binomial tolerances): the null, 100 grid runs, at most 5 reports that say anything
is better (≤ α = 5 %: a procedure that errs in 15 % of runs passes with probability 0.2 %, one at 2 % fails with
probability 1.5 %); each kind's power, 100 runs at the stated difference, 80 ± 10 % (2.5 binomial SE; 60 % power
passes with probability 2.5 %), and 40 runs at twice it, ≥ 95 %; the intervals, 150 runs (≥ 93 % of nominal 95 %;
the confirmed means' bias within 3 standard errors of 0, the standard error at most 0.1 pp) and 40 grid runs of
main effects (≥ 93 % of over 250 intervals)."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from simulated_runs import Population, _configs, check_null, simulate_run, simulated_report_run, stated_size

from ablate.report.findings import verdict_lines

NULL_RUNS = 100
POWER_RUNS = 100
TWICE_RUNS = 40
INTERVAL_RUNS = 150
EFFECT_RUNS = 40
SEED_SD_RATIO = 6.0  # the configs' seed SDs differ: noisy configs must not be judged with the quiet ones' noise


GRID = 36  # every qlblock config: each choice's main effect rests on 9–12 matched pairs


def _report(rng, population=None, design_seed=0, configs=12):
    population = population or Population(seed_sd_ratio=SEED_SD_RATIO)
    run = simulated_report_run(*simulate_run(rng, population, design_seed=design_seed, configs=configs))
    gc.freeze()  # statsmodels' Holm calls gc.collect() on every family: let it walk only what is new since
    return run, verdict_lines(run)


def _null_batch(seed: int, runs: int) -> list[int]:
    """The number of "X is better" sentences in each of ``runs`` null reports of grid runs (main effects, best
    candidate vs baselines, Δ at equal MACs: every kind of the factorial family)."""
    gc.freeze()  # statsmodels' Holm calls gc.collect(); keep it from walking every object torch and timm made
    rng = np.random.default_rng(seed)
    return [sum(" is better than " in line for line in _report(rng, design_seed=seed * runs + r, configs=GRID)[1])
            for r in range(runs)]


DESIGN_0 = [c["name"] for c in _configs(12, 0)]
FAVOURITE = DESIGN_0[0]  # in the power runs of "baseline", the candidate selection picks


def _worse_resnet50(population, pp):
    """Every candidate but one 6 pp behind it, and ResNet50 ``pp`` behind that one. Only runs in which selection
    picked that one count (:func:`_power_batch`): the comparison's two sides then keep their own seed SDs from run to
    run, and the statement's honesty is not blurred by a mixture of differently noisy pairs. Selection sees only the
    run seed's val split, so the runs it keeps are no luckier on the fresh seeds' test split that judges."""
    population.config_effects.update((name, population.shift_for(-6.0)) for name in DESIGN_0[1:])
    population.config_effects["ResNet50"] = population.shift_for(-pp)


# One real effect of each kind: twist worse than dwconv (an axis effect), ResNet50 worse than the best candidate.
# Each returns the comparison's row in the family and whether the report found it.
EFFECTS = {  # kind → (inject, the comparison's row, found in a verdict line, design seed, configs)
    "effect": (lambda p, pp: p.effects.__setitem__(("spatial", "twist"), p.shift_for(-pp)),
               lambda f: f[(f["kind"] == "effect") & (f["a"] == "twist")],
               lambda line: line.startswith("`dwconv` is better than `twist` — spatial"), None, GRID),
    "baseline": (_worse_resnet50,
                 lambda f: f[(f["kind"] == "baseline") & (f["a"] == FAVOURITE) & (f["b"] == "ResNet50")],
                 lambda line: f"`{FAVOURITE}` is better than `ResNet50` — best candidate " in line, 0, 12),
}


def _power_batch(seed: int, runs: int, kind: str, effect_pp: float) -> list[tuple[bool, float]]:
    """For ``runs`` reports with one real effect of ``effect_pp`` pp: found it, and the detectable difference the
    report states for that comparison."""
    gc.freeze()
    inject, comparison, found, design_seed, configs = EFFECTS[kind]
    rng, out = np.random.default_rng(1000 + seed), []
    for r in range(10 * runs):
        population = Population(seed_sd_ratio=SEED_SD_RATIO)
        inject(population, effect_pp)
        run, lines = _report(rng, population, design_seed=seed * runs + r if design_seed is None else design_seed,
                             configs=configs)
        row = comparison(run.verdicts)
        if len(row):  # the comparison took place (for "baseline": selection picked the favourite)
            out.append((any(found(line) for line in lines), float(row["detectable"].iloc[0])))
        if len(out) == runs:
            break
    return out


@pytest.mark.slow
def test_under_the_global_null_at_most_5_percent_of_reports_say_anything_is_better(parallel):
    check_null(parallel(_null_batch, NULL_RUNS), NULL_RUNS)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(EFFECTS))
def test_the_stated_detectable_difference_is_honest(parallel, kind):
    size = stated_size(parallel, _power_batch, kind)
    assert 3.0 < size < 30.0  # pp: what a 12-config run on digits tells apart after multiplicity, seeds 1 : 6
    found = np.mean([f for f, _ in parallel(_power_batch, POWER_RUNS, kind, size)])
    assert 0.70 <= found <= 0.90, (size, found)
    twice = np.mean([f for f, _ in parallel(_power_batch, TWICE_RUNS, kind, 2 * size)])
    assert twice >= 0.95, (size, twice)


@pytest.mark.slow
def test_intervals_cover_and_confirmed_means_carry_no_winners_curse():
    rng = np.random.default_rng(21)
    covered, bias, selection_bias = [], [], []  # bias: one mean per run (its confirmed candidates share images)
    gc.freeze()
    for r in range(INTERVAL_RUNS):
        population = Population(seed_sd_ratio=SEED_SD_RATIO)  # configs that really differ (≈ ±2 pp): selection picks
        trials, predictions = simulate_run(rng, population, design_seed=r, spread=0.15)
        run = simulated_report_run(trials, predictions)
        truth = {name: population.top1(skill) for name, skill in population.skills.items()}
        summary = run.summary.set_index("name")
        confirmed = summary[summary["evidence"] == "confirm"]
        run_bias = []
        for name, row in confirmed.iterrows():
            covered.append(row["test_top1_ci_low"] <= truth[name] <= row["test_top1_ci_high"])
            if name != "ResNet50":
                delta = truth[name] - truth["ResNet50"]
                covered.append(row["delta_ci_low"] <= delta <= row["delta_ci_high"])
            if row["kind"] == "candidate":
                run_bias.append(row["test_top1_mean"] - truth[name])
                selection_bias.append(row["selection_val_top1"] - truth[name])
        bias.append(np.mean(run_bias))
    assert np.mean(covered) >= 0.93, np.mean(covered)
    # no winner's curse: the confirmed means' bias within 3 standard errors of 0, and the runs enough to see one of
    # 0.3 pp (the standard error at most 0.1 pp)
    se = np.std(bias, ddof=1) / np.sqrt(len(bias))
    assert abs(np.mean(bias)) <= 3 * se and se <= 0.1, (np.mean(bias), se)
    assert np.mean(selection_bias) > 0.5  # the number that selected them is optimistic: the test can fail


@pytest.mark.slow
def test_main_effect_intervals_cover_the_average_over_settings_even_with_interactions():
    # configs that differ beyond their axes (interactions, ±2 pp): the truth of a main effect is the mean over the
    # other axes' settings of the two configs' population difference, which the pairs' t-interval must cover
    rng = np.random.default_rng(31)
    covered = []
    gc.freeze()
    for r in range(EFFECT_RUNS):
        population = Population(seed_sd_ratio=SEED_SD_RATIO)
        population.effects[("spatial", "twist")] = population.shift_for(-3.0)
        trials, predictions = simulate_run(rng, population, design_seed=r, spread=0.15, configs=GRID, confirm=0)
        run = simulated_report_run(trials, predictions)
        truth = {name: population.top1(skill) for name, skill in population.skills.items()}
        points = trials[trials["kind"] == "candidate"].drop_duplicates("name").set_index(
            ["nonlinearity", "spatial", "width"])["name"]
        for row in run.effects[run.effects["estimable"]].itertuples():
            deltas = [truth[points[key]] - truth[points[_swap(key, row.axis, row.reference)]]
                      for key in points.index if _label(key, row.axis) == row.choice]
            covered.append(row.ci_low <= np.mean(deltas) <= row.ci_high)
    assert len(covered) > 250 and np.mean(covered) >= 0.93, (len(covered), np.mean(covered))


AXES = ("nonlinearity", "spatial", "width")


def _label(key, axis):
    value = key[AXES.index(axis)]
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _swap(key, axis, choice):
    value = float(choice) if axis == "width" else choice
    return tuple(value if a == axis else v for a, v in zip(AXES, key))
