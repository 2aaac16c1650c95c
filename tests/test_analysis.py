"""ablate.analysis: intervals, the per-config summary, OLS effects, EDFs, Δ at equal MACs, noise floor, fidelity.

Every expected number is worked out here by hand or by a direct call of the library the module wraps, on tables
generated here (no run needed).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from ablate.analysis import (
    baseline_front, compare_runs, complexity_weights, delta_at_equal_macs, effects, error_edf, noise_floor,
    paired_delta, rung_fidelity, summarize, t_interval,
)
from ablate.analysis.noise import binomial_se

AXES = ("nonlinearity", "spatial", "width")
TRUE = {"nonlinearity": {"relu": 0.0, "multiply": 2.5, "hardball": -1.0},
        "spatial": {"dwconv": 0.0, "maxpool": -1.5, "avgpool": -2.0, "twist": 0.5},
        "width": {1.0: 0.0, 2.0: 1.0, 4.0: 1.8}}
ORDER = {axis: list(choices) for axis, choices in TRUE.items()}


def row(name, top1, seed=0, kind="candidate", status="completed", macs=10e6, phase="design", **axes):
    return {"kind": kind, "name": name, "config": name, "status": status, "val_top1": top1, "test_top1": top1 - 1,
            "seed": seed, "phase": phase, "macs": macs, "params": macs / 10, "latency_ms": 1.0, "throughput": 100.0,
            **axes}


def simulated(rng, seeds=(0,), noise=1.0) -> pd.DataFrame:
    """The full grid under an additive model plus Gaussian noise, one row per config and seed."""
    rows = []
    for nl, sp, w in itertools.product(*(list(v) for v in TRUE.values())):
        mean = 80 + TRUE["nonlinearity"][nl] + TRUE["spatial"][sp] + TRUE["width"][w]
        rows += [row(f"{nl}-{sp}-w{w:g}", mean + rng.normal(0, noise), s, nonlinearity=nl, spatial=sp, width=w)
                 for s in seeds]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------- intervals

def test_t_interval_matches_scipy_and_refuses_n_1():
    x = [1.0, 2.0, 4.0, float("nan")]
    ci = t_interval(x)
    low, high = stats.t.interval(0.95, 2, loc=np.mean([1, 2, 4]), scale=stats.sem([1, 2, 4]))
    assert (ci.n, ci.mean) == (3, pytest.approx(7 / 3)) and (ci.low, ci.high) == (pytest.approx(low), pytest.approx(high))
    one = t_interval([5.0])
    assert one.n == 1 and one.mean == 5.0 and math.isnan(one.low) and math.isnan(one.std) and not one.has_ci
    same = t_interval([3.0, 3.0])
    assert (same.low, same.high) == (3.0, 3.0) and same.excludes_zero
    assert t_interval([-1.0, 1.0]).covers_zero and t_interval([]).n == 0


# ------------------------------------------------------------------------------------------------------------ summary

def _replicated() -> pd.DataFrame:
    rows = [row("relu-dwconv-w1", v, s, nonlinearity="relu", spatial="dwconv", width=1.0, macs=20e6,
                phase="design" if s == 0 else "confirm") for s, v in enumerate([80.0, 81.0, 79.0])]
    rows += [row("ResNet50", v, s, kind="baseline", macs=40e6) for s, v in enumerate([77.0, 77.5])]  # seed 2 missing
    rows += [row("R50-max", v, s, kind="baseline", macs=10e6) for s, v in enumerate([75.0, 75.5, 74.5])]
    rows += [row("multiply-twist-w4", 70.0, 0, nonlinearity="multiply", spatial="twist", width=4.0, macs=100e6),
             row("relu-twist-w2", 60.0, 0, status="pruned", nonlinearity="relu", spatial="twist", width=2.0)]
    return pd.DataFrame(rows)


def test_summary_one_row_per_config_with_cis_and_paired_delta():
    summary = summarize(_replicated()).set_index("name")
    assert list(summary.index) == ["relu-dwconv-w1", "ResNet50", "R50-max", "multiply-twist-w4"]  # best first
    cand = summary.loc["relu-dwconv-w1"]
    assert (cand["n"], cand["seeds"], cand["phases"], cand["kind"]) == (3, "0,1,2", "design+confirm", "candidate")
    expected = t_interval([80.0, 81.0, 79.0])
    assert (cand["val_top1_mean"], cand["val_top1_ci_low"], cand["val_top1_ci_high"]) == \
        (80.0, pytest.approx(expected.low), pytest.approx(expected.high))
    assert cand["test_top1_mean"] == 79.0 and cand["test_top1_n"] == 3
    # paired with ResNet50 over seeds 0 and 1 only (its seed 2 did not complete): Δ = 3.0, 3.5
    paired = t_interval([3.0, 3.5])
    assert (cand["delta_n"], cand["delta_mean"], cand["delta_ci_low"]) == (2, 3.25, pytest.approx(paired.low))
    assert paired_delta(_replicated(), "relu-dwconv-w1", "R50-max").mean == pytest.approx(5.0)
    single = summary.loc["multiply-twist-w4"]
    assert single["n"] == 1 and math.isnan(single["val_top1_ci_low"]) and math.isnan(single["delta_ci_high"])
    assert single["delta_mean"] == -7.0 and "relu-twist-w2" not in summary.index  # pruned rows never summarised
    # Δ at equal MACs: front R50-max (10 M, 75.0) → ResNet50 (40 M, 77.25); at 20 M, halfway in log MACs
    assert cand["delta_equal_macs"] == pytest.approx(80.0 - (75.0 + 77.25) / 2)
    assert math.isnan(single["delta_equal_macs"])  # 100 M: beyond the front


def test_summary_of_an_old_style_table_and_of_nothing():
    old = _replicated().drop(columns=["seed", "phase", "kind"]).query("name != 'relu-dwconv-w1'")
    summary = summarize(old).set_index("name")
    assert (summary["n"] == 1).all() and summary["val_top1_ci_low"].isna().all()
    assert summary.loc["R50-max", "kind"] == "baseline" and summary.loc["R50-max", "seeds"] == ""
    assert summarize(_replicated().query("status == 'pruned'")).empty


# ------------------------------------------------------------------------------------------------------------ effects

def test_effects_recover_known_effects_and_match_statsmodels():
    table = effects(simulated(np.random.default_rng(1), seeds=(0, 1), noise=0.3), AXES, reference=ORDER)
    assert table["estimable"].all() and (table["reason"] == "").all()
    assert table.attrs["formula"] == ("val_top1 ~ C(nonlinearity, Treatment('relu')) + C(spatial, "
                                      "Treatment('dwconv')) + C(width, Treatment('1'))")
    for r in table.itertuples():
        truth = TRUE[r.axis][float(r.choice) if r.axis == "width" else r.choice]
        assert abs(r.estimate - truth) < 0.3 and r.ci_low < truth < r.ci_high
        assert r.n == 24 if r.axis != "spatial" else r.n == 18
    # the same numbers as statsmodels' own treatment-coded formula
    data = simulated(np.random.default_rng(1), seeds=(0, 1), noise=0.3)
    fit = smf.ols("val_top1 ~ C(nonlinearity, Treatment('relu')) + C(spatial, Treatment('dwconv')) + C(width)",
                  data=data).fit()
    multiply = table.set_index("choice").loc["multiply"]
    assert multiply["estimate"] == pytest.approx(fit.params["C(nonlinearity, Treatment('relu'))[T.multiply]"])
    assert multiply["df_resid"] == fit.df_resid == 72 - 8


def test_effect_cis_cover_the_truth_in_at_least_90_percent_of_50_tables():
    rng = np.random.default_rng(12)
    covered = []
    for _ in range(50):
        table = effects(simulated(rng, noise=1.0), AXES, reference=ORDER)
        truth = [TRUE[r.axis][float(r.choice) if r.axis == "width" else r.choice] for r in table.itertuples()]
        covered.append((table["ci_low"] <= truth) & (truth <= table["ci_high"]))
    covered = pd.concat(covered, axis=1)
    assert covered.to_numpy().mean() >= 0.9 and (covered.mean(axis=1) >= 0.9).all()


def test_not_estimable_choices_say_why():
    data = simulated(np.random.default_rng(3))
    few = data[~((data["width"] == 4.0) & (data["name"] != "relu-dwconv-w4"))]  # width 4 in one row only
    row4 = effects(few, AXES, reference=ORDER).set_index("choice").loc["4"]
    assert not row4["estimable"] and math.isnan(row4["estimate"]) and row4["n"] == 1
    assert row4["reason"] == "only 1 full-budget row with this choice (needs ≥ 2)"
    # width follows spatial one-to-one (as when a width is solved per pair): aliased, never a number
    tied = data[data["width"] == data["spatial"].map({"dwconv": 1.0, "maxpool": 2.0, "avgpool": 4.0, "twist": 1.0})]
    table = effects(tied, AXES, reference=ORDER).set_index(["axis", "choice"])
    assert not table.loc[("width", "2"), "estimable"] and "rank-deficient" in table.loc[("width", "2"), "reason"]
    assert not table.loc[("spatial", "maxpool"), "estimable"] and table.loc[("spatial", "twist"), "estimable"]
    assert table.loc[("nonlinearity", "multiply"), "estimable"]
    # 4 configs for 5 parameters: no residual degrees of freedom
    tiny = data[data["name"].isin(["relu-dwconv-w1", "multiply-dwconv-w1", "relu-maxpool-w2", "multiply-maxpool-w2",
                                   "relu-dwconv-w2"])]
    table = effects(tiny, AXES, reference=ORDER)
    assert (table.loc[table["n"] == 0, "reason"] == "no full-budget rows with this choice").all()
    assert table.loc[table["n"] >= 2, "reason"].str.fullmatch(
        r"too few residual degrees of freedom \(1 from 5 rows; needs ≥ 2\)").all()
    # the reference is the space file's first choice with ≥ 2 rows, else the most common one
    assert effects(data, AXES)["reference"].tolist()[:2] == ["hardball", "hardball"]  # 12 each: natural order
    no_ref = effects(data.head(1), ["nonlinearity"], reference={"nonlinearity": ["relu", "multiply"]})
    assert no_ref["reason"].str.contains("no choice of nonlinearity has ≥ 2 full-budget rows").all()


# ---------------------------------------------------------------------------------------------------------------- EDF

def test_complexity_weights_equalise_the_macs_distribution():
    macs = np.array([1, 1, 1, 2, 4, 4, 8, 8, 8, 8], dtype=float) * 1e6
    choice = np.array(list("aaaab") + list("bbbbb"))
    w = complexity_weights(macs, choice, bins=4)
    for c in "ab":
        assert w[choice == c].sum() == pytest.approx(1.0)
    # within a choice every occupied bin (one per MACs value here) carries the same weight: a's 3 models at 1 M
    # share what its one model at 2 M has alone; b's 2 models at 4 M share what its 4 models at 8 M share
    assert w[:3].sum() == pytest.approx(w[3]) == pytest.approx(0.5)
    assert w[4:6].sum() == pytest.approx(w[6:].sum()) == pytest.approx(0.5)


def test_error_edf_weighted_and_plain():
    rows = [row(f"m{i}", top1, macs=m, nonlinearity=c) for i, (top1, m, c) in enumerate(
        [(90, 1e6, "relu"), (80, 1e6, "relu"), (70, 1e6, "relu"), (85, 8e6, "relu"),
         (88, 1e6, "multiply"), (86, 8e6, "multiply"), (84, 8e6, "multiply"), (82, 8e6, "multiply")])]
    rows.append(row("m8", 50, macs=8e6, nonlinearity="relu", phase="confirm"))  # replicates are left out
    edf = error_edf(pd.DataFrame(rows), "nonlinearity", bins=2)
    relu = edf[edf["choice"] == "relu"]
    assert relu["error"].tolist() == [10.0, 15.0, 20.0, 30.0]
    # relu: three models at 1 M share half the weight, the one at 8 M has the other half
    assert relu["edf"].tolist() == pytest.approx([1 / 6, 4 / 6, 5 / 6, 1.0])
    plain = error_edf(pd.DataFrame(rows), "nonlinearity", normalise=False)
    assert plain[plain["choice"] == "multiply"]["edf"].tolist() == pytest.approx([0.25, 0.5, 0.75, 1.0])


# ---------------------------------------------------------------------------------------------------- equal MACs

def test_delta_at_equal_macs_interpolates_in_log_macs():
    got = delta_at_equal_macs([78, 75, 80, 70, 77], [20e6, 10e6, 40e6, 5e6, np.nan], [10e6, 40e6], [70.0, 80.0])
    assert got[:3] == pytest.approx([3.0, 5.0, 0.0]) and np.isnan(got[3:]).all()
    assert np.isnan(delta_at_equal_macs([80], [10e6], [], [])).all()
    base = pd.DataFrame({"kind": ["baseline"] * 3 + ["candidate"], "val_top1_mean": [77.0, 75.0, 78.5, 99.0],
                         "macs": [40e6, 15e6, 22e6, 1e6]})
    assert baseline_front(base)["macs"].tolist() == [15e6, 22e6]  # ResNet50 (40 M, 77) is dominated


# ---------------------------------------------------------------------------------------------------- noise floor

def test_noise_floor_binomial_and_seed_std():
    assert binomial_se(90.0, 144) == pytest.approx(100 * math.sqrt(0.9 * 0.1 / 144)) == pytest.approx(2.5)
    assert math.isnan(binomial_se(90.0, 0))
    noise = noise_floor(_replicated(), n_val=300)
    groups = [[80.0, 81.0, 79.0], [77.0, 77.5], [75.0, 75.5, 74.5]]
    pooled = math.sqrt(sum(np.var(g, ddof=1) * (len(g) - 1) for g in groups) / sum(len(g) - 1 for g in groups))
    assert (noise.seed_std, noise.seed_configs, noise.seed_rows, noise.seed_df) == (pytest.approx(pooled), 3, 8, 5)
    assert noise.n_val == 300 and noise.binomial_se == pytest.approx(binomial_se(noise.accuracy, 300))
    bare = noise_floor(_replicated().query("seed == 0"), n_val=None)
    assert bare.seed_configs == 0 and math.isnan(bare.seed_std) and math.isnan(bare.binomial_se)


# ------------------------------------------------------------------------------------------------------- fidelity

def test_compare_runs_identical_reversed_and_top_k():
    a = simulated(np.random.default_rng(5))
    same = compare_runs(a, a.copy())
    assert (same.n, same.kendall_tau, same.spearman_rho, same.top_k_overlap) == (36, 1.0, 1.0, 5)
    reversed_ = compare_runs(a, a.assign(val_top1=-a["val_top1"]), k=3)
    assert reversed_.kendall_tau == pytest.approx(-1.0) and reversed_.top_k_overlap == 0
    expected = stats.kendalltau(a["val_top1"], a["val_top1"] + np.linspace(0, 5, len(a)))
    shifted = compare_runs(a, a.assign(val_top1=a["val_top1"] + np.linspace(0, 5, len(a))))
    assert (shifted.kendall_tau, shifted.kendall_p) == (pytest.approx(expected[0]), pytest.approx(expected[1]))
    assert compare_runs(a.head(2), a).n == 2 and math.isnan(compare_runs(a.head(2), a).kendall_tau)


def test_rung_fidelity_from_curves():
    trials = pd.DataFrame([row(f"c{i}", final, trial_id=f"t{i}") for i, final in enumerate([70.0, 80.0, 90.0, 60.0])])
    curves = pd.DataFrame([{"trial_id": f"t{i}", "epoch": e, "val_top1": v}
                           for i, first in enumerate([50.0, 40.0, 60.0, 30.0]) for e, v in ((1, first), (5, 0.0))])
    agreement = rung_fidelity(curves, trials)
    assert agreement.n == 4
    assert agreement.kendall_tau == pytest.approx(stats.kendalltau([50, 40, 60, 30], [70, 80, 90, 60])[0])
    assert rung_fidelity(pd.DataFrame(), trials).n == 0
