import itertools

import pytest
import timm
import torch

import ablate
from ablate.models import BASELINES, MACROS, NONLINEARITIES, SPATIAL_OPS, Block, BlockConfig, build_model
from ablate.models.layers import Hardball, Twist, coord_grids, hardball, softball

COMBOS = list(itertools.product(NONLINEARITIES, SPATIAL_OPS))


@pytest.mark.parametrize("macro,size,width", [("cifar", 32, 1.0), ("resnet50", 64, 0.25)])
@pytest.mark.parametrize("nonlinearity,spatial", COMBOS)
def test_every_combination_trains_on_both_macros(nonlinearity, spatial, macro, size, width):
    torch.manual_seed(0)
    model = build_model(BlockConfig(nonlinearity, spatial, width), macro, num_classes=7)
    x = torch.randn(2, 3, size, size)
    out = model(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_config_string_round_trips():
    for nonlinearity, spatial in COMBOS:
        for width in (0.25, 1.0, 2.5, 4.0):
            cfg = BlockConfig(nonlinearity, spatial, width)
            assert BlockConfig.parse(str(cfg)) == cfg
    assert str(BlockConfig("relu", "maxpool", 0.25)) == "relu-maxpool-w0.25"
    assert str(BlockConfig("multiply", "dwconv", 4)) == "multiply-dwconv-w4"


@pytest.mark.parametrize("bad", ["relu-maxpool", "gelu-maxpool-w1", "relu-conv5x5-w1", "relu-maxpool-w0", "x"])
def test_bad_config_strings_raise_one_line(bad):
    with pytest.raises(ValueError) as err:
        BlockConfig.parse(bad)
    assert "\n" not in str(err.value)


def test_inner_width_rule():
    assert BlockConfig("relu", "dwconv", 0.25).inner_channels(256) == 64
    assert BlockConfig("relu", "dwconv", 0.001).inner_channels(64) == 1
    block = Block(16, 32, 2, BlockConfig("multiply", "dwconv", 2).inner_channels(32),
                  BlockConfig("multiply", "dwconv", 2))
    assert block.conv1[0].out_channels == 128  # the split-multiply needs 2 × inner
    assert block.spatial.groups == 64 and block.spatial.stride == (2, 2)
    assert isinstance(block.act3, Hardball)  # multiply: hardball after the add of a downsampling block


def test_our_resnet50_skeleton_matches_timm_exactly():
    ours = build_model(BASELINES["ResNet50"], "resnet50", 1000)
    reference = timm.create_model("resnet50")
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())


def test_reference_models_are_registered_in_timm():
    assert set(timm.list_models("qlnet*")) >= {"qlnet", "qlnet22", "qlnet26"}
    for name in ("resnet50_max", "resnet50_hybrid", "qlnet"):
        model = timm.create_model(name, num_classes=10)
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
    with pytest.raises(ValueError):
        timm.create_model("qlnet", pretrained=True)


def test_hybrid_follows_pflayer_rule():
    model = timm.create_model("resnet50_hybrid")
    for stage in model.stages:
        for block in stage:
            stride = 2 if isinstance(block.skip, torch.nn.Sequential) and block.skip[0].stride == (2, 2) else 1
            if stride == 2:
                pool, conv = block.spatial
                assert isinstance(pool, torch.nn.AvgPool2d) and pool.kernel_size == 2
                assert conv.kernel_size == (3, 3) and isinstance(block.act2, torch.nn.ReLU)
            else:
                assert isinstance(block.spatial, torch.nn.MaxPool2d) and isinstance(block.bn2, torch.nn.Identity)


def test_qlnet_parameter_counts():
    counts = {n: sum(p.numel() for p in timm.create_model(n).parameters()) for n in ("qlnet", "qlnet22", "qlnet26")}
    assert round(counts["qlnet"] / 1e6, 2) == 10.06
    assert counts["qlnet"] < counts["qlnet22"] < counts["qlnet26"]


def test_hardball_keeps_the_inside_and_projects_the_outside():
    torch.manual_seed(0)
    x = torch.randn(4, 16, 5, 5)
    radius2 = 16.0
    y = hardball(x, radius2)
    norm_x, norm_y = x.norm(dim=1), y.norm(dim=1)
    inside = norm_x <= 4.0
    assert inside.any() and (~inside).any()
    assert torch.allclose(y.permute(0, 2, 3, 1)[inside], x.permute(0, 2, 3, 1)[inside])
    assert (norm_y <= 4.0 + 1e-5).all()
    assert torch.allclose(norm_y[~inside], torch.full_like(norm_y[~inside], 4.0), atol=1e-5)
    cos = torch.nn.functional.cosine_similarity(x, y, dim=1)
    assert torch.allclose(cos, torch.ones_like(cos), atol=1e-5)  # radial: direction kept


def test_hardball_and_softball_are_finite_at_zero():
    for fn in (hardball, softball):
        x = torch.zeros(2, 8, 3, 3, requires_grad=True)
        y = fn(x, 8.0)
        y.sum().backward()
        assert torch.equal(y, torch.zeros_like(y))
        assert torch.isfinite(x.grad).all()
    big = torch.randn(2, 8, 3, 3) * 100
    assert (softball(big, 8.0).norm(dim=1) < 8 ** 0.5).all()


def test_hardball_commutes_with_orthogonal_maps():
    torch.manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(12, 12))
    x = torch.randn(3, 12, 4, 4) * 2
    def rotate(t):
        return torch.einsum("ij,njhw->nihw", q, t)
    assert torch.allclose(hardball(rotate(x), 12.0), rotate(hardball(x, 12.0)), atol=1e-5)


def test_twist_grids_are_cached_and_stride_works():
    twist = Twist(6, stride=2)
    x = torch.randn(2, 6, 16, 16)
    twist(x)
    hits = coord_grids.cache_info().hits
    first = coord_grids(8, 8, x.device, x.dtype)
    out = twist(x)
    assert coord_grids.cache_info().hits >= hits + 2
    assert coord_grids(8, 8, x.device, x.dtype)[0] is first[0]  # the very same tensor, not rebuilt
    assert out.shape == (2, 6, 8, 8)
    grid_x, grid_y = first
    assert grid_x[0, 0, 0, 0] == -1 and grid_x[0, 0, 0, -1] == 1 and grid_y[0, 0, -1, 0] == 1


def test_twist_is_a_variable_coefficient_conv():
    """With the X/Y kernels zeroed twist is the plain depthwise conv; with them on it varies across the map."""
    torch.manual_seed(0)
    twist = Twist(3)
    x = torch.ones(1, 3, 9, 9)
    with torch.no_grad():
        twist.conv.weight.view(3, 3, 3, 3)[:, 1:] = 0
        plain = twist(x)
        twist.conv.weight.view(3, 3, 3, 3)[:, 1] = 1.0 / 9
        varying = twist(x)
    assert torch.allclose(plain[..., 4, 2:7], plain[..., 4, 4:5].expand(-1, -1, 5))
    assert varying[0, 0, 4, 1] < varying[0, 0, 4, 7]  # X grows left to right


def test_import_ablate_exposes_the_api():
    assert ablate.build_model is build_model
    assert set(BASELINES) == {"ResNet50", "R50-max", "R50-hybrid"}
    assert {"resnet50", "cifar", "cifar-resnet50"} <= set(MACROS)


def test_twist_trains_after_its_grids_were_first_built_in_inference_mode():
    """Costs/latency run under inference_mode; the cached grid must still work in a later backward pass."""
    coord_grids.cache_clear()
    twist = Twist(4)
    x = torch.randn(2, 4, 11, 13)
    with torch.inference_mode():
        twist(x)
    twist(x).sum().backward()
    assert twist.conv.weight.grad is not None and torch.isfinite(twist.conv.weight.grad).all()


def test_blocknet_from_keywords_on_a_cifar_macro():
    """depths/channels replace the macro's; feature_info follows the stem's stride (1 for the CIFAR stem)."""
    from ablate.models import BlockNet

    model = BlockNet("multiply-dwconv-w1", "cifar", depths=(2, 1), channels=(24, 48), num_classes=5, in_chans=1,
                     drop_path_rate=0.2).eval()
    assert [len(stage) for stage in model.stages] == [2, 1] and model.num_features == 48
    assert [f["reduction"] for f in model.feature_info] == [1, 1, 2]
    assert [f["num_chs"] for f in model.feature_info] == [32, 24, 48]
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 5)
    assert build_model("relu-maxpool-w0.25", "cifar", 3, in_chans=1).stem[0].in_channels == 1
    with pytest.raises(ValueError, match="depths and channels"):
        BlockNet("relu-maxpool-w1", "cifar", depths=(1, 1))
