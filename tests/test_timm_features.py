"""timm's feature API on every model ablate registers, after timm's own tests/test_models.py.

Mirrors ``test_model_forward_intermediates``, ``test_model_forward_features`` and
``test_model_forward_intermediates_features``, then checks what those leave out: every ``feature_cls`` gives the
same feature maps, ``indices`` / ``stop_early`` / ``norm`` / ``intermediates_only`` semantics,
``prune_intermediate_layers`` and other block configs and macros. Inputs are 64×64 (32×32 for CIFAR macros),
batch 1, under ``torch.no_grad()``.
"""

import math

import pytest
import timm
import torch
from timm.models import FeatureInfo

import ablate  # noqa: F401  (registers the models)
from ablate.models.layers import Hardball

MODELS = ["qlnet", "qlnet22", "qlnet26", "resnet50_hybrid", "resnet50_max"]
FEATURE_CLASSES = ["list", "dict", "hook", "getter", "fx"]
SIZE = 64


def images(size=SIZE, seed=0):
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def as_list(outputs):
    return list(outputs.values()) if isinstance(outputs, dict) else list(outputs)


def assert_matches_info(maps, channels, reductions, size=SIZE):
    """timm's check: channels equal, spatial size at most ceil(size / reduction) + 1 (ours: exactly size // r)."""
    assert len(maps) == len(channels) == len(reductions)
    for o, c, r in zip(maps, channels, reductions):
        assert o.shape[:2] == (1, c) and o.shape[-2:] == (size // r, size // r) <= (math.ceil(size / r) + 1,) * 2
        assert not torch.isnan(o).any()


@pytest.mark.parametrize("name", MODELS)
def test_forward_intermediates_matches_feature_info_and_forward_features(name):
    """timm's test_model_forward_intermediates, plus ``intermediates_only``."""
    model = timm.create_model(name).eval()
    info = FeatureInfo(model.feature_info, len(model.feature_info))
    assert len(info) >= 3
    x = images()
    with torch.no_grad():
        final, maps = model.forward_intermediates(x, output_fmt="NCHW")
        assert_matches_info(maps, info.channels(), info.reduction())
        assert final.shape[1] == model.num_features
        assert torch.allclose(final, model.forward_features(x))
        only = model.forward_intermediates(x, intermediates_only=True)
        assert isinstance(only, list) and all(torch.equal(a, b) for a, b in zip(only, maps))
        model.set_grad_checkpointing()
        checkpointed, _ = model.forward_intermediates(x)
    assert torch.allclose(final, checkpointed, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_features_only_getter_matches_feature_info(name):
    """timm's test_model_forward_intermediates_features (``feature_cls='getter'``): it prunes the head."""
    model = timm.create_model(name, features_only=True, feature_cls="getter").eval()
    with torch.no_grad():
        maps = model(images())
    assert_matches_info(maps, model.feature_info.channels(), model.feature_info.reduction())
    assert not hasattr(model.model.fc, "weight") and isinstance(model.model.final_act, torch.nn.Identity)


@pytest.mark.parametrize("name", MODELS)
def test_every_feature_cls_gives_the_same_maps(name):
    """timm's test_model_forward_features for each feature class; same seed, same weights, same feature maps."""
    outputs = {}
    for cls in FEATURE_CLASSES:
        torch.manual_seed(0)
        model = timm.create_model(name, features_only=True, feature_cls=cls).eval()
        with torch.no_grad():
            outputs[cls] = as_list(model(images()))
        assert_matches_info(outputs[cls], model.feature_info.channels(), model.feature_info.reduction())
        assert model.feature_info.channels()[0] == 64 and model.feature_info.reduction() == [2, 4, 8, 16, 32]
    for cls in FEATURE_CLASSES[1:]:
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(outputs[cls], outputs["list"])), cls


@pytest.mark.parametrize("cls", FEATURE_CLASSES)
def test_out_indices_for_every_feature_cls(cls):
    model = timm.create_model("qlnet", features_only=True, feature_cls=cls, out_indices=(1, 3)).eval()
    assert model.feature_info.channels() == [64, 256] and model.feature_info.reduction() == [4, 16]
    with torch.no_grad():
        maps = as_list(model(images()))
    assert_matches_info(maps, [64, 256], [4, 16])


def test_getter_prunes_to_the_last_index_and_takes_negative_indices():
    model = timm.create_model("resnet50_max", features_only=True, feature_cls="getter", out_indices=(0, -3))
    assert model.out_indices == [0, 2] and len(model.model.stages) == 2
    assert model.feature_info.channels() == [64, 512] and model.feature_info.reduction() == [2, 8]
    with torch.no_grad():
        maps = model.eval()(images())
    assert_matches_info(maps, [64, 512], [2, 8])


def test_indices_stop_early_norm_and_output_fmt():
    torch.manual_seed(0)
    model = timm.create_model("qlnet").eval()
    assert isinstance(model.final_act, Hardball) and model.final_act.radius2 == 512
    model.final_act = Hardball(512, radius2=1e-4)  # a ball small enough to clip every feature vector
    x = images(seed=1)
    with torch.no_grad():
        final, maps = model.forward_intermediates(x)
        last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
        assert [m.shape[1] for m in last_two] == [256, 512] and torch.equal(last_two[1], maps[4])
        picked = model.forward_intermediates(x, indices=[0, -2], intermediates_only=True)
        assert torch.equal(picked[0], maps[0]) and torch.equal(picked[1], maps[3])
        early, early_maps = model.forward_intermediates(x, indices=[1, 2], stop_early=True)
        assert torch.equal(early, maps[2]) and all(torch.equal(a, b) for a, b in zip(early_maps, maps[1:3]))
        _, normed = model.forward_intermediates(x, indices=[3, 4], norm=True)
        assert torch.equal(normed[0], maps[3]) and torch.allclose(normed[1], model.final_act(maps[4]))
        assert torch.allclose(normed[1], final) and not torch.allclose(maps[4], final)  # hardball is active
    with pytest.raises(ValueError, match="NCHW"):
        model.forward_intermediates(x, output_fmt="NHWC")
    with pytest.raises(AssertionError):
        model.forward_intermediates(x, indices=[5])
    with pytest.raises(AssertionError):
        model.forward_intermediates(x, indices=6)


def test_prune_intermediate_layers_then_forward():
    torch.manual_seed(0)
    full = timm.create_model("qlnet").eval()
    torch.manual_seed(0)
    model = timm.create_model("qlnet").eval()
    x = images(seed=2)
    assert model.prune_intermediate_layers([1, -3]) == [1, 2]
    assert len(model.stages) == 2 and model.num_features == model.head_hidden_size == 128
    assert isinstance(model.final_act, torch.nn.Identity) and model.num_classes == 0
    with torch.no_grad():
        _, reference = full.forward_intermediates(x)
        final, maps = model.forward_intermediates(x)
        assert len(maps) == 3 and all(torch.equal(a, b) for a, b in zip(maps, reference))
        assert torch.equal(final, maps[2]) and torch.equal(model(x), maps[2])
        assert torch.equal(model.forward_features(x), maps[2])

    kept = timm.create_model("qlnet").eval()
    kept.prune_intermediate_layers(indices=2, prune_head=False)  # the last stage stays: hardball and head stay
    assert isinstance(kept.final_act, Hardball) and kept.fc.out_features == 1000
    kept.prune_intermediate_layers(indices=1, prune_norm=True)
    assert isinstance(kept.final_act, torch.nn.Identity) and kept.num_classes == 0

    stem_only = timm.create_model("resnet50_hybrid").eval()
    assert stem_only.prune_intermediate_layers([0]) == [0] and len(stem_only.stages) == 0
    with torch.no_grad():
        out = stem_only(x)
    assert out.shape == (1, 64, SIZE // 2, SIZE // 2)  # the stem's activation, before its max-pool


@pytest.mark.parametrize("cls", FEATURE_CLASSES)
def test_other_blocks_and_macros_through_create_model(cls):
    """``block=`` / ``macro=`` / ``depths=`` replace the variant's; default out_indices follow the stage count."""
    model = timm.create_model("resnet50_max", block="multiply-twist-w2", macro="cifar-tiny", features_only=True,
                              feature_cls=cls).eval()  # twist: fx keeps it as a leaf
    assert model.feature_info.channels() == [16, 32, 64] and model.feature_info.reduction() == [1, 1, 2]
    with torch.no_grad():
        maps = as_list(model(images(size=32)))
    assert_matches_info(maps, [16, 32, 64], [1, 1, 2], size=32)
    deep = timm.create_model("qlnet", block="relu-maxpool-w0.25", depths=(1, 1), channels=(64, 128),
                             features_only=True, feature_cls=cls).eval()
    assert deep.feature_info.channels() == [64, 64, 128] and deep.feature_info.reduction() == [2, 4, 8]
    with torch.no_grad():
        assert_matches_info(as_list(deep(images())), [64, 64, 128], [2, 4, 8])
