"""Twin configs — two names, one network — are one config: fingerprinted, trained once, counted once.

The audit's case: nonlinearity [relu, multiply] × spatial [dwconv, twist] × width [1, 1.001] is 8 names but 4
networks (widths 1 and 1.001 give the same inner channels). Counted as 8 configs the additive OLS had 4 residual df
and said "`multiply` is better than `relu`"; on the 4 networks it has 1 df: not estimable.
"""

from __future__ import annotations

import numpy as np
from simulated_runs import Population, simulate_run, simulated_report_run

from ablate.analysis.twins import merge_twins
from ablate.models import BASELINES, build_model
from ablate.models.fingerprint import network_fingerprint
from ablate.report.findings import verdict_lines
from ablate.space import load_space
from ablate.space.networks import space_networks
from ablate.tune.search import AblationSearch

TWIN_SPACE = """\
name: twins
design: grid
axes:
  nonlinearity:
    choices: [relu, multiply]
  spatial:
    choices: [dwconv, twist]
  width:
    choices: [1, 1.001]
baselines: [resnet50_max]
"""


def test_fingerprint_tells_networks_apart_not_spellings():
    assert network_fingerprint("relu-dwconv-w1", "cifar") == network_fingerprint("relu-dwconv-w1.001", "cifar")
    assert network_fingerprint("relu-dwconv-w1", "cifar") != network_fingerprint("relu-dwconv-w2", "cifar")
    assert network_fingerprint("relu-dwconv-w1", "cifar") != network_fingerprint("relu-maxpool-w1", "cifar")
    assert network_fingerprint("relu-dwconv-w1", "cifar") != network_fingerprint("relu-dwconv-w1", "cifar-tiny")
    assert network_fingerprint("relu-hybrid-w0.25", "cifar") == network_fingerprint(BASELINES["R50-hybrid"], "cifar")
    # equal fingerprints really are the same network: same parameter shapes, same init under one seed
    a, b = (dict(build_model(c, "cifar", 10).named_parameters()) for c in ("relu-dwconv-w1", "relu-dwconv-w1.001"))
    assert [p.shape for p in a.values()] == [p.shape for p in b.values()]


def test_a_design_keeps_one_point_per_network_and_none_a_baseline_trains(tmp_path):
    path = tmp_path / "twins.yaml"
    path.write_text(TWIN_SPACE)
    networks = space_networks(load_space(path), "cifar")
    points = load_space(path).grid_points()
    assert len(points) == 8 and len(networks.distinct(points)) == 4
    assert networks.aliases["relu-dwconv-w1.001"] == "relu-dwconv-w1" and len(networks.aliases) == 4
    # pflayer: three of its points are the baselines themselves, trained by the baseline jobs
    pflayer = space_networks(load_space("pflayer"), "cifar")
    assert {a: n for a, n in pflayer.aliases.items()} == {
        "relu-conv3x3-w0.25": "ResNet50", "relu-maxpool-w0.25": "R50-max", "relu-hybrid-w0.25": "R50-hybrid"}
    assert len(pflayer.distinct(load_space("pflayer").grid_points())) == 5
    assert space_networks(load_space("qlblock"), "cifar").aliases == {}  # no twins in the default space


def test_the_searcher_treats_a_twin_proposal_as_a_repeat(tmp_path):
    path = tmp_path / "twins.yaml"
    path.write_text(TWIN_SPACE)
    space = load_space(path)
    networks = space_networks(space, "cifar")
    search = AblationSearch(3, space.grid_points(), networks.distinct(space.grid_points()), space=space,
                            metric="val_top1", mode="max", networks=networks, seed=0)
    proposed = [search.suggest(f"t{i}") for i in range(4)]
    built = {network_fingerprint(space.block_of(c), "cifar") for c in proposed}
    assert len(built) == 4 and search.design_size == 4 and search.distinct_points == 4


def _twin_grid() -> list[dict]:
    return [{"name": f"{nl}-{sp}-w{w:g}", "nonlinearity": nl, "spatial": sp, "width": w, "network": f"{nl}-{sp}"}
            for nl in ("relu", "multiply") for sp in ("dwconv", "twist") for w in (1.0, 1.001)]


def test_twins_are_one_config_in_every_table_and_verdict():
    population = Population()
    population.effects.update({("nonlinearity", "multiply"): population.shift_for(4.0),
                               ("spatial", "twist"): population.shift_for(8.0)})
    trials, predictions = simulate_run(np.random.default_rng(3), population, design=_twin_grid())
    run = simulated_report_run(trials, predictions)
    effects = run.effects
    assert effects.attrs["n_model"] == 4  # four networks, not eight names
    assert not effects["estimable"].any()
    assert effects["reason"].str.contains("only 2 matched pairs").any()  # 2 pairs: 1 df, not an interval
    assert not (run.verdicts["kind"] == "effect").any()
    assert not any("— nonlinearity" in line or "— spatial" in line for line in verdict_lines(run)
                   if " is better than " in line)
    summary = run.summary
    candidates = summary[summary["kind"] == "candidate"]
    assert len(candidates) == 4 and (candidates["aliases"] != "").all()
    assert sorted(run.aliases) == sorted(candidates["name"])
    # the same tables without the fingerprint see eight configs and four residual df: what the audit found
    naive = simulated_report_run(trials.drop(columns="network"), predictions.drop(columns="network"))
    assert naive.effects.attrs["n_model"] == 8 and naive.effects["estimable"].any()


def test_merging_keeps_a_baselines_identity_and_each_model_once():
    trials, _ = simulate_run(np.random.default_rng(0), confirm=0, design=[
        {"name": "relu-hybrid-w0.25", "nonlinearity": "relu", "spatial": "hybrid", "width": 0.25, "network": "hyb"},
        {"name": "relu-dwconv-w1", "nonlinearity": "relu", "spatial": "dwconv", "width": 1.0, "network": "dw"}])
    trials.loc[trials["name"] == "R50-hybrid", "network"] = "hyb"
    merged = merge_twins(trials)
    assert "relu-hybrid-w0.25" not in set(merged["name"])
    hybrid = merged[merged["name"] == "R50-hybrid"]
    assert len(hybrid) == 1 and hybrid["kind"].item() == "baseline" and hybrid["aliases"].item() == "relu-hybrid-w0.25"
    assert hybrid["trial_id"].item().startswith("design-R50-hybrid")  # the baseline's own model is the one kept


def test_every_shipped_space_is_fingerprinted_without_allocating_a_model():
    full = load_space("full")
    networks = space_networks(full, "cifar-resnet50")  # 90 points built on the meta device, none trained
    distinct = networks.distinct(full.grid_points())
    assert len(distinct) == 90 - 3  # its relu-{conv3x3,maxpool,hybrid}-w0.25 points are the baselines
