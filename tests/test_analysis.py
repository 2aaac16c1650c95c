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
from scipy import stats

from ablate.analysis import (
    Evidence,
    baseline_front,
    compare_runs,
    complexity_weights,
    cost_matched_baseline,
    detectable_difference,
    effects,
    error_edf,
    noise_floor,
    rung_fidelity,
    summarize,
)
from ablate.analysis.edf import normalisable
from ablate.analysis.evidence import pooled_dispersion, seed_component
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


# ------------------------------------------------------------------------------------------------------------ summary

N_IMAGES = 200


def hits(rng, top1: float) -> np.ndarray:
    """A model's per-image test hits: exactly round(top1 %) of N_IMAGES right, the rest wrong, in random order."""
    out = np.zeros(N_IMAGES, dtype=bool)
    out[rng.choice(N_IMAGES, int(round(top1 / 100 * N_IMAGES)), replace=False)] = True
    return out


def _replicated() -> tuple[pd.DataFrame, pd.DataFrame]:
    """relu-dwconv-w1 selected and confirmed under fresh seeds 1–3; ResNet50 and R50-max beside it; a config seen
    under the run seed only; a pruned one. Test top-1 equals the per-image hits' mean."""
    rng = np.random.default_rng(0)
    spec = [("relu-dwconv-w1", "candidate", 20e6, {0: 81.0, 1: 80.0, 2: 81.5, 3: 79.0}),
            ("ResNet50", "baseline", 40e6, {0: 77.0, 1: 77.5, 2: 76.0, 3: 78.0}),
            ("R50-max", "baseline", 10e6, {0: 75.0, 1: 75.5, 2: 74.5, 3: 76.0}),
            ("multiply-twist-w4", "candidate", 100e6, {0: 70.0})]
    rows, preds = [], []
    for name, kind, macs, by_seed in spec:
        nl, sp, w = ("relu", "conv3x3", "w0.25") if kind == "baseline" else name.split("-")
        for seed, top1 in by_seed.items():
            h = hits(rng, top1)
            phase = "design" if seed == 0 else "confirm"
            rows.append(row(name, top1 + 2.0 if seed == 0 else top1 - 1.0, seed, kind=kind, macs=macs, phase=phase,
                            nonlinearity=nl, spatial=sp, width=float(w[1:])) | {"test_top1": 100 * h.mean()})
            preds.append(pd.DataFrame({"trial_id": f"{name}-{seed}", "kind": kind, "name": name, "config": name,
                                       "seed": seed, "phase": phase, "split": "test", "image": np.arange(N_IMAGES),
                                       "correct": h}))
    rows.append(row("relu-twist-w2", 60.0, 0, status="pruned", nonlinearity="relu", spatial="twist", width=2.0))
    return pd.DataFrame(rows), pd.concat(preds, ignore_index=True)


def test_summary_keeps_selection_apart_from_the_evidence():
    trials, preds = _replicated()
    summary = summarize(trials, preds).set_index("name")
    # confirmed configs first (by evidence top-1), then the run-seed-only one; pruned rows never summarised
    assert list(summary.index) == ["relu-dwconv-w1", "ResNet50", "R50-max", "multiply-twist-w4"]
    cand = summary.loc["relu-dwconv-w1"]
    assert (cand["n"], cand["seeds"], cand["phases"], cand["n_confirm"], cand["evidence"]) == \
        (4, "0,1,2,3", "design+confirm", 3, "confirm")
    assert cand["selection_val_top1"] == 83.0 and cand["selection_rank"] == 1  # the run seed's val top-1 only
    evidence = Evidence(preds)
    # the evidence top-1 is the fresh seeds' test mean, never the selecting seed's
    assert cand["test_top1_mean"] == pytest.approx(np.mean([80.0, 81.5, 79.0]))
    assert cand["test_top1_ci_low"] < cand["test_top1_mean"] < cand["test_top1_ci_high"]
    delta = evidence.difference("relu-dwconv-w1", "ResNet50", "confirm")
    assert cand["delta_mean"] == pytest.approx(np.mean([80.0, 81.5, 79.0]) - np.mean([77.5, 76.0, 78.0]))
    assert (cand["delta_ci_low"], cand["delta_p"]) == (pytest.approx(delta.low), pytest.approx(delta.p_value))
    single = summary.loc["multiply-twist-w4"]
    assert (single["evidence"], single["n_confirm"], single["test_top1_mean"]) == ("design", 0, 70.0)
    # one seed still gets an interval: the seed dispersion of the confirmed configs, at its accuracy
    assert single["test_top1_ci_low"] < 70.0 < single["test_top1_ci_high"]
    # Δ against the number shown beside it: ResNet50's fresh-seed mean (its row's evidence), not its run-seed model
    assert single["delta_mean"] == pytest.approx(70.0 - summary.loc["ResNet50", "test_top1_mean"])
    assert single["delta_mean"] == pytest.approx(70.0 - np.mean([77.5, 76.0, 78.0]))
    # Δ at equal MACs: the best baseline (by the run seed's val top-1) costing no more
    assert cand["equal_macs_baseline"] == "R50-max" and single["equal_macs_baseline"] == "ResNet50"
    assert cand["delta_equal_macs"] == pytest.approx(np.mean([80.0, 81.5, 79.0]) - np.mean([75.5, 74.5, 76.0]))
    assert summary.loc["R50-max", "kind"] == "baseline" and math.isnan(summary.loc["R50-max", "delta_equal_macs"])


def test_summary_without_per_image_evidence_gives_no_interval():
    trials, _ = _replicated()
    summary = summarize(trials).set_index("name")
    assert summary["test_top1_ci_low"].isna().all() and summary["delta_ci_low"].isna().all()
    assert summary.loc["relu-dwconv-w1", "test_top1_mean"] == pytest.approx(np.mean([80.0, 81.5, 79.0]))
    old = trials.drop(columns=["seed", "phase", "kind"]).query("name != 'relu-dwconv-w1'")
    assert summarize(old).set_index("name").loc["R50-max", "kind"] == "baseline"
    assert summarize(trials.query("status == 'pruned'")).empty


def test_cost_matched_baseline_is_the_best_one_costing_no_more():
    base = pd.DataFrame({"kind": ["baseline"] * 3 + ["candidate"], "name": ["ResNet50", "R50-max", "R50-hybrid", "c"],
                         "selection_val_top1": [77.0, 75.0, 78.5, 99.0], "macs": [40e6, 15e6, 22e6, 1e6]})
    front = baseline_front(base)
    assert front["name"].tolist() == ["R50-max", "R50-hybrid"]  # ResNet50 (40 M, 77) costs more for less
    assert [cost_matched_baseline(m, front) for m in (10e6, 15e6, 21e6, 22e6, 1e9, float("nan"))] == \
        [None, "R50-max", "R50-max", "R50-hybrid", "R50-hybrid", None]


# ---------------------------------------------------------------------------------------------------- evidence

def test_seed_component_by_hand_and_intervals_never_zero_width():
    # 2 seeds × 4 images: row means 0.75, 0.25, column means 0.5 each: MS_seed = 4·(2·0.25²)/1 = 0.5, residuals ±0.25
    # in every cell: MS_resid = 8·0.0625 / (1·3) = 1/6; σ²_seed = (0.5 − 1/6) / 4 = 1/12
    table = np.array([[1, 1, 1, 0], [0, 0, 1, 0]], dtype=float)
    assert seed_component(table) == pytest.approx((0.5 - 1 / 6) / 4)
    same = np.tile((np.arange(N_IMAGES) % 10 != 0).astype(float), (3, 1))  # three seeds, identical hits: 90 %
    pooled = pooled_dispersion([same, same])
    assert pooled.df == 4 and pooled.dispersion == 0.0  # identical seeds have no seed variance
    preds = pd.concat(pd.DataFrame({"trial_id": f"{n}{s}", "kind": "candidate", "name": n, "config": n, "seed": s,
                                    "phase": "confirm", "split": "test", "image": np.arange(N_IMAGES),
                                    "correct": same[0].astype(bool)}) for n in "ab" for s in (1, 2, 3))
    evidence = Evidence(preds)
    mean, diff = evidence.accuracy("a", "confirm"), evidence.difference("a", "b", "confirm")
    assert mean.estimate == pytest.approx(90.0) and mean.high - mean.low > 0.5  # the finite test set still counts
    assert diff.estimate == 0.0 and diff.low < 0 < diff.high and diff.high - diff.low > 0.3  # two models that agree
    assert diff.n_seeds == (3, 3) and diff.n_images == N_IMAGES


# ------------------------------------------------------------------------------------------------------------ effects

def test_matched_pair_effects_recover_known_effects_and_are_a_t_over_the_pairs():
    data = simulated(np.random.default_rng(1), seeds=(0, 1), noise=0.3)  # two run-seed rows per config: their mean
    table = effects(data, AXES, reference=ORDER)
    assert table["estimable"].all() and (table["reason"] == "").all()
    for r in table.itertuples():
        truth = TRUE[r.axis][float(r.choice) if r.axis == "width" else r.choice]
        assert abs(r.estimate - truth) < 0.5 and r.ci_low < truth < r.ci_high
        assert r.n == {"nonlinearity": 12, "spatial": 9, "width": 12}[r.axis]  # one pair per other-axes setting
    # the same numbers as scipy's one-sample t-test of the pairs' Δs
    means = data.groupby("name").agg({"val_top1": "mean", **{a: "first" for a in AXES}}).set_index(
        ["nonlinearity", "spatial", "width"])["val_top1"]
    deltas = [means[("multiply", sp, w)] - means[("relu", sp, w)] for sp in TRUE["spatial"] for w in TRUE["width"]]
    multiply = table.set_index("choice").loc["multiply"]
    test = stats.ttest_1samp(deltas, 0.0)
    assert multiply["estimate"] == pytest.approx(np.mean(deltas)) and multiply["p_value"] == pytest.approx(test.pvalue)
    assert multiply["df_resid"] == 11


def test_matched_pair_intervals_hold_the_spread_an_interaction_adds():
    # multiply helps by 4 pp with dwconv and hurts by 4 pp elsewhere: on average 0 over the settings, but the pairs
    # disagree; the interval is wide enough for that spread and the per-setting effects are singled out
    data = simulated(np.random.default_rng(2), noise=0.3)
    mask = data["nonlinearity"] == "multiply"
    data.loc[mask, "test_top1"] += np.where(data.loc[mask, "spatial"] == "dwconv", 4.0, -4.0 / 3) - 2.5
    n = 5000  # images: enough that the pairs' own noise (their per-image evidence) is well below ±4 pp

    def exact(rng, top1):
        out = np.zeros(n, dtype=bool)
        out[rng.choice(n, int(round(top1 / 100 * n)), replace=False)] = True
        return out

    preds = pd.concat(pd.DataFrame({"trial_id": r.name, "kind": "candidate", "name": r.name, "config": r.name,
                                    "seed": 0, "phase": "design", "split": "test", "image": np.arange(n),
                                    "correct": exact(np.random.default_rng(i), r.test_top1)})
                      for i, r in enumerate(data.itertuples()))
    first = preds[preds["name"] == data["name"].iloc[0]]  # a config retrained twice: the pool of seed noise (none)
    preds = pd.concat([preds, first.assign(seed=1, phase="confirm", trial_id="c1"),
                       first.assign(seed=2, phase="confirm", trial_id="c2")])
    from ablate.analysis.evidence import Evidence

    table = effects(data, AXES, metric="test_top1", reference=ORDER, evidence=Evidence(preds)).set_index("choice")
    multiply = table.loc["multiply"]
    assert multiply["ci_low"] < 0 < multiply["ci_high"] and multiply["ci_high"] - multiply["ci_low"] > 2
    assert multiply["heterogeneity_p"] < 0.05 and "dwconv/" in multiply["settings"]


def test_effects_take_one_observation_per_config():
    # the best configs retrained under more seeds: their replicates must not count as evidence about the axes
    data = simulated(np.random.default_rng(1), noise=0.3)
    reruns = pd.DataFrame([row(r.name, r.val_top1 + 5.0, s, phase="confirm", nonlinearity=r.nonlinearity,
                               spatial=r.spatial, width=r.width) for r in data.head(3).itertuples() for s in (1, 2, 3)])
    alone, with_reruns = (effects(t, AXES, reference=ORDER) for t in (data, pd.concat([data, reruns])))
    assert with_reruns.attrs["n_model"] == 36
    assert with_reruns["estimate"].tolist() == pytest.approx(alone["estimate"].tolist())
    assert with_reruns["ci_low"].tolist() == pytest.approx(alone["ci_low"].tolist())


def test_effect_cis_cover_the_truth_in_at_least_90_percent_of_200_tables():
    rng = np.random.default_rng(12)
    covered = []
    for _ in range(200):
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
    assert row4["reason"].startswith("only 1 matched pair (configs differing in width alone; needs ≥ 3)")
    # width follows spatial one-to-one (as when a width is solved per pair): no two configs differ in width alone
    tied = data[data["width"] == data["spatial"].map({"dwconv": 1.0, "maxpool": 2.0, "avgpool": 4.0, "twist": 1.0})]
    table = effects(tied, AXES, reference=ORDER).set_index(["axis", "choice"])
    assert not table.loc[("width", "2"), "estimable"] and table.loc[("width", "2"), "n"] == 0
    assert table.loc[("nonlinearity", "multiply"), "estimable"]
    # the reference is the space file's first choice present, else the most common one
    assert effects(data, AXES)["reference"].tolist()[:2] == ["hardball", "hardball"]  # 12 each: natural order


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


def test_edfs_normalise_only_over_the_macs_every_choice_occupies_and_never_over_width():
    # relu spans 1–8 M, multiply only 4–8 M: the normalised EDFs keep the models at 4–8 M
    rows = [row(f"r{i}", 90 - i, macs=m, nonlinearity="relu", width=1.0) for i, m in enumerate([1e6, 2e6, 4e6, 8e6])]
    rows += [row(f"m{i}", 80 - i, macs=m, nonlinearity="multiply", width=2.0) for i, m in enumerate([4e6, 6e6, 8e6])]
    edf = error_edf(pd.DataFrame(rows), "nonlinearity", bins=2)
    assert sorted(edf["macs"].tolist()) == [4e6, 4e6, 6e6, 8e6, 8e6]
    assert normalisable(pd.DataFrame(rows), "nonlinearity", min_rows=2) == (True, "")
    ok, why = normalisable(pd.DataFrame(rows), "nonlinearity", min_rows=3)
    assert not ok and "holds fewer than 3 models of relu" in why
    ok, why = normalisable(pd.DataFrame(rows), "width", min_rows=1)
    assert not ok and why == "width sets the MACs itself, so equalising them would be meaningless"


# ---------------------------------------------------------------------------------------------------- noise floor

def test_noise_floor_binomial_and_seed_std_of_the_fresh_seeds():
    assert binomial_se(90.0, 144) == pytest.approx(100 * math.sqrt(0.9 * 0.1 / 144)) == pytest.approx(2.5)
    assert math.isnan(binomial_se(90.0, 0))
    trials, _ = _replicated()
    noise = noise_floor(trials, n_images=300)
    groups = [[80.0, 81.5, 79.0], [77.5, 76.0, 78.0], [75.5, 74.5, 76.0]]  # the confirmation seeds only
    pooled = math.sqrt(sum(np.var(g, ddof=1) * (len(g) - 1) for g in groups) / sum(len(g) - 1 for g in groups))
    assert (noise.seed_std, noise.seed_configs, noise.seed_rows, noise.seed_df) == (pytest.approx(pooled), 3, 9, 6)
    assert noise.n_images == 300 and noise.binomial_se == pytest.approx(binomial_se(noise.accuracy, 300))
    bare = noise_floor(trials.query("seed == 0"), n_images=None)
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


def test_rung_fidelity_from_curves_over_design_trials_only_with_a_bootstrap_ci():
    finals = [70.0, 80.0, 90.0, 60.0, 85.0, 75.0]
    trials = pd.DataFrame([row(f"c{i}", final, trial_id=f"t{i}") for i, final in enumerate(finals)]
                          + [row("s", 99.0, trial_id="ts", phase="search")])  # a search trial ASHA let through
    firsts = [50.0, 40.0, 60.0, 30.0, 55.0, 52.0]
    curves = pd.DataFrame([{"trial_id": f"t{i}", "epoch": e, "val_top1": v}
                           for i, first in enumerate(firsts) for e, v in ((1, first), (5, 0.0))]
                          + [{"trial_id": "ts", "epoch": e, "val_top1": 10.0} for e in (1, 5)])
    agreement = rung_fidelity(curves, trials)
    assert agreement.n == 6
    assert agreement.kendall_tau == pytest.approx(stats.kendalltau(firsts, finals)[0])
    low, high = agreement.tau_ci_low, agreement.tau_ci_high
    boot = stats.bootstrap((np.array(firsts), np.array(finals)), lambda a, b, axis=-1: stats.kendalltau(a, b)[0],
                           paired=True, vectorized=False, n_resamples=999, method="percentile",
                           random_state=np.random.default_rng(0)).confidence_interval
    assert (low, high) == (pytest.approx(boot.low), pytest.approx(boot.high)) and low < agreement.kendall_tau <= high
    assert rung_fidelity(pd.DataFrame(), trials).n == 0


@pytest.mark.parametrize("df", [1.0, 2.0, 3.0, 5.0, 13.0, 78.0, 1000.0])
@pytest.mark.parametrize("comparisons", [1, 12, 30])
def test_the_detectable_difference_has_the_power_it_states(df, comparisons):
    """At the stated difference, a simulated two-sided t-test at α / m rejects in 80 % of 400,000 draws — at every
    df and family size, the few-df, many-comparison corners included (where statsmodels' ``TTestPower.solve_power``
    returned differences with as little as 7 % power)."""
    alpha, se = 0.05 / comparisons, 1.7
    detectable = detectable_difference(se, df, alpha)
    noise = se * math.sqrt(df / stats.chi2.median(df))  # the median-unbiased noise the difference is stated in
    rng = np.random.default_rng(int(df) * 100 + comparisons)
    t = (rng.standard_normal(400_000) + detectable / noise) / np.sqrt(rng.chisquare(df, 400_000) / df)
    power = np.mean(np.abs(t) > stats.t.isf(alpha / 2, df))
    assert abs(power - 0.8) < 0.004, power  # ±0.004: five standard errors of 400,000 draws


def test_ties_in_selection_are_broken_by_the_run_seed_never_by_name():
    from dataclasses import dataclass

    from ablate.tune.jobs import selected

    @dataclass(frozen=True)
    class Settings:
        confirm: int
        seed: int

    names = ["hardball-dwconv-w1", "multiply-dwconv-w1", "relu-dwconv-w1"]  # alphabetical order: relu always last
    rows = [{"kind": "candidate", "status": "completed", "phase": "design", "config": n, "val_top1": 95.70}
            for n in names] + [{"kind": "candidate", "status": "completed", "phase": "design",
                                "config": "relu-maxpool-w1", "val_top1": 90.0}]
    firsts = [selected(Settings(1, seed), rows)[0]["config"] for seed in range(30)]
    assert set(firsts) == set(names)  # each of the tied configs comes first under some run seed
    assert selected(Settings(3, 5), rows)[-1]["config"] != "relu-maxpool-w1"  # a lower score never wins a tie
    assert firsts == [selected(Settings(1, seed), rows)[0]["config"] for seed in range(30)]  # and reproducibly
    # the summary ranks the same way: its rank 1 is what the run confirmed
    for seed in (0, 1, 2):
        trials = pd.DataFrame([row(r["config"], r["val_top1"], seed=seed, nonlinearity=r["config"].split("-")[0],
                                   spatial=r["config"].split("-")[1], width=1.0) for r in rows])
        summary = summarize(trials).set_index("name")
        assert summary["selection_rank"].idxmin() == selected(Settings(1, seed), rows)[0]["config"]
