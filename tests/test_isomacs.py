"""The iso-MAC width solver: every (nonlinearity, spatial) pair within ±5 % of ResNet50's MACs, counted by fvcore."""

import time

import pytest

from ablate.core.errors import UsageError
from ablate.costs import measure
from ablate.models import MACROS, NONLINEARITIES, SPATIAL_OPS, BlockConfig, build_model
from ablate.space import isomacs, load_space
from ablate.space.isomacs import TOLERANCE, match_macs, proxy_input_size, round_significant

QLBLOCK_ISO_PAIRS = load_space("qlblock-iso").pairs()


def check(matched, num_classes):
    assert abs(matched.ratio - 1) <= TOLERANCE
    assert matched.width == round_significant(matched.width)  # ≤ 3 significant digits, in the config string
    model = build_model(matched.block, matched.macro, num_classes)
    assert measure(model, matched.input_size, timing=False).macs == matched.macs  # ablate.costs' own count


def test_proxy_input_keeps_every_stride_exact():
    assert proxy_input_size("resnet50", (3, 224, 224)) == (3, 32, 32)
    assert proxy_input_size("cifar", (3, 32, 32)) == (3, 4, 4)
    assert proxy_input_size("cifar", (3, 30, 30)) == (3, 30, 30)  # no exact shrink: counted as is


@pytest.mark.parametrize("input_size", [(3, 32, 32), (3, 16, 16)])
def test_every_pair_matches_on_the_cifar_macro(input_size):
    """All 18 pairs of the block library (qlblock-iso's 12, plus conv3x3 and hybrid)."""
    for nonlinearity in NONLINEARITIES:
        for spatial in SPATIAL_OPS:
            matched = match_macs(nonlinearity, spatial, "cifar", 10, input_size)
            assert abs(matched.ratio - 1) <= TOLERANCE, matched
    check(match_macs("multiply", "twist", "cifar", 10, input_size), 10)
    assert match_macs("relu", "conv3x3", "cifar", 10, input_size).width == 0.25  # ResNet50's own block


@pytest.mark.slow  # ~17 s on 2 shared CPU cores (up to ~50 s under load): 14 pairs, each counted once at 224²
def test_every_qlblock_iso_pair_matches_on_the_resnet50_macro():
    start = time.perf_counter()
    for nonlinearity, spatial in [*QLBLOCK_ISO_PAIRS, ("relu", "hybrid"), ("relu", "conv3x3")]:
        matched = match_macs(nonlinearity, spatial, "resnet50", 1000, (3, 224, 224))
        assert abs(matched.ratio - 1) <= TOLERANCE, matched
    assert match_macs("relu", "conv3x3", "resnet50", 1000, (3, 224, 224)).width == 0.25
    print(f"resnet50 macro: {time.perf_counter() - start:.1f} s")


def test_qlblock_iso_resolves_and_its_configs_carry_the_solved_width():
    space = load_space("qlblock-iso")
    assert [a.name for a in space.axes] == ["nonlinearity", "spatial"] and space.width_match == "macs"
    assert space.size == 12 and len(QLBLOCK_ISO_PAIRS) == 12
    with pytest.raises(ValueError, match="resolved"):
        space.grid()
    resolved = space.resolved("cifar", 10, MACROS["cifar"].input_size)
    configs = resolved.grid()
    assert len(configs) == 12
    for config in configs:
        matched = resolved.matched[(config.nonlinearity, config.spatial)]
        assert config.width == matched.width and str(config).endswith(f"-w{matched.width:g}")
        assert BlockConfig.parse(str(config)) == config
        assert abs(matched.ratio - 1) <= TOLERANCE
    assert len({c.width for c in configs}) > 1  # the widths really differ between pairs


def test_a_pair_out_of_reach_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(isomacs, "WIDTH_RANGE", (0.05, 0.1))  # far too narrow for a maxpool block
    match_macs.cache_clear()
    try:
        with pytest.raises(UsageError) as err:
            match_macs("relu", "maxpool", "cifar", 10, (3, 32, 32))
    finally:
        match_macs.cache_clear()
    text = str(err.value)
    assert "\n" not in text and "relu × maxpool" in text and "width 0.1" in text and "M MACs" in text


def test_a_wrong_fit_is_caught_and_refined_at_full_size(monkeypatch):
    """The full-size count, not the proxy fit, decides: a fit that proposes 1.6× the width gets refined."""
    right_fit = isomacs.proxy_fit

    def wrong_fit(*args):
        constant, c1, c2 = right_fit(*args)
        return constant, c1 / 1.6, c2 / 1.6 ** 2  # the same curve stretched: its root is 1.6× too wide

    monkeypatch.setattr(isomacs, "proxy_fit", wrong_fit)
    match_macs.cache_clear()
    try:
        matched = match_macs("multiply", "dwconv", "cifar", 10, (3, 32, 32))
    finally:
        match_macs.cache_clear()
    assert abs(matched.ratio - 1) <= TOLERANCE
