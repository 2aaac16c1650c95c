"""timm's model contract, checked for every model ablate registers (after timm's own tests/test_models.py).

Inputs are 64×64 so the whole file runs in well under a minute on a 2-core CPU; reductions and pool sizes are
checked at that size against the ones the pretrained cfg states for 224×224.
"""

import pytest
import timm
import torch

import ablate  # noqa: F401  (registers the models)
from ablate.models import Block

MODELS = ["qlnet", "qlnet22", "qlnet26", "resnet50_hybrid", "resnet50_max"]
SIZE = 64
FEATURE_CHANNELS = {
    "resnet50_max": [64, 256, 512, 1024, 2048], "resnet50_hybrid": [64, 256, 512, 1024, 2048],
    "qlnet": [64, 64, 128, 256, 512], "qlnet22": [64, 64, 128, 256, 512], "qlnet26": [64, 64, 128, 256, 512],
}
REDUCTIONS = [2, 4, 8, 16, 32]


def train_py_kwargs(**args):
    """The keywords timm's train.py passes to ``create_model`` (its argument defaults, overridable by flag name).

    train.py: ``create_model(args.model, pretrained=args.pretrained, in_chans=in_chans,
    num_classes=args.num_classes, drop_rate=args.drop, drop_path_rate=args.drop_path,
    drop_block_rate=args.drop_block, global_pool=args.gp, bn_momentum=args.bn_momentum, bn_eps=args.bn_eps,
    scriptable=args.torchscript, checkpoint_path=args.initial_checkpoint, **factory_kwargs, **args.model_kwargs)``.
    """
    flags = {**dict(pretrained=False, in_chans=3, num_classes=None, drop=0.0, drop_path=None, drop_block=None,
                    gp=None, bn_momentum=None, bn_eps=None, torchscript=False, initial_checkpoint=""), **args}
    return dict(pretrained=flags["pretrained"], in_chans=flags["in_chans"], num_classes=flags["num_classes"],
                drop_rate=flags["drop"], drop_path_rate=flags["drop_path"], drop_block_rate=flags["drop_block"],
                global_pool=flags["gp"], bn_momentum=flags["bn_momentum"], bn_eps=flags["bn_eps"],
                scriptable=flags["torchscript"], checkpoint_path=flags["initial_checkpoint"])


def images(batch=2, chans=3, seed=0):
    return torch.randn(batch, chans, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def test_every_registered_model_is_covered():
    assert timm.list_models(module="timm_models") == MODELS


@pytest.mark.parametrize("name", MODELS)
def test_train_py_keywords_defaults_and_flags(name):
    default = timm.create_model(name, **train_py_kwargs())
    assert default.num_classes == 1000 and default.in_chans == 3
    model = timm.create_model(name, **train_py_kwargs(num_classes=42, in_chans=1, drop=0.2, drop_path=0.1,
                                                      gp="avgmax"))
    assert model.get_classifier().out_features == 42 and model.stem[0].in_channels == 1
    assert model.global_pool.pool_type == "avgmax" and model.drop_rate == 0.2
    assert model.eval()(images(chans=1)).shape == (2, 42)


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_every_parameter_gets_a_gradient(name):
    model = timm.create_model(name, pretrained=False, num_classes=42).train()
    out = model(images())
    assert out.shape == (2, 42) and torch.isfinite(out).all()
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:3]}"


@pytest.mark.parametrize("name", MODELS)
def test_fx_trace_then_torchscript_gives_the_same_logits(name):
    """timm's fx path (``torch.fx.symbolic_trace``, then ``torch.jit.script`` of the graph), as timm's own ResNet
    passes it."""
    model = timm.create_model(name, pretrained=False, num_classes=10).eval()
    scripted = torch.jit.script(torch.fx.symbolic_trace(model))
    x = images()
    with torch.no_grad():
        assert torch.allclose(scripted(x), model(x), atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_head_removal_gives_features(name):
    model = timm.create_model(name).eval()
    cfg = model.pretrained_cfg
    assert cfg["input_size"][1] // cfg["pool_size"][0] == REDUCTIONS[-1]  # 224 → 7×7: the stated reduction
    x = images()
    with torch.no_grad():
        features = model.forward_features(x)
        pre_logits = model.forward_head(features, pre_logits=True)
        assert features.shape == (2, model.num_features, SIZE // 32, SIZE // 32)
        assert pre_logits.shape == (2, model.head_hidden_size)
        model.reset_classifier(0)
        assert model.num_classes == 0 and torch.equal(model(x), pre_logits)
        model.reset_classifier(0, "")
        assert model(x).shape == features.shape
        model.reset_classifier(7, "catavgmax")
        assert model.head_hidden_size == 2 * model.num_features and model(x).shape == (2, 7)
        assert model.get_classifier() is model.fc and model.get_classifier(name_only=True) == "fc"
        bare = timm.create_model(name, num_classes=0, global_pool="").eval()
        assert bare(x).shape == features.shape


@pytest.mark.parametrize("name", MODELS)
def test_features_only_channels_and_reductions(name):
    model = timm.create_model(name, features_only=True).eval()
    assert model.feature_info.channels() == FEATURE_CHANNELS[name]
    assert model.feature_info.reduction() == REDUCTIONS
    with torch.no_grad():
        outputs = model(images())
    assert [o.shape[1] for o in outputs] == FEATURE_CHANNELS[name]
    assert [o.shape[-1] for o in outputs] == [SIZE // r for r in REDUCTIONS]
    picked = timm.create_model(name, features_only=True, out_indices=(2, 4)).eval()
    with torch.no_grad():
        two = picked(images())
    assert [o.shape[1] for o in two] == [FEATURE_CHANNELS[name][2], FEATURE_CHANNELS[name][4]]


@pytest.mark.parametrize("name", MODELS)
def test_pretrained_cfg_names_real_weights(name):
    model = timm.create_model(name, in_chans=1)
    cfg, state = model.pretrained_cfg, model.state_dict()
    assert state[cfg["first_conv"] + ".weight"].shape[1] == 1  # the first conv really reads the input
    assert state[cfg["classifier"] + ".weight"].shape[0] == cfg["num_classes"] == 1000
    assert model.default_cfg is cfg and cfg["architecture"] == name


@pytest.mark.parametrize("name", MODELS)
def test_drop_path_changes_training_outputs_only(name, randomize_bn):
    torch.manual_seed(0)
    dropped = randomize_bn(timm.create_model(name, num_classes=10, drop_path_rate=0.5))
    plain = timm.create_model(name, num_classes=10)
    plain.load_state_dict(dropped.state_dict())  # same weights and BN statistics; DropPath has none
    rates = [b.drop_path.drop_prob if hasattr(b.drop_path, "drop_prob") else 0.0
             for b in dropped.modules() if isinstance(b, Block)]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.5) and rates == sorted(rates)
    x = images(batch=4)
    with torch.no_grad():
        assert torch.equal(dropped.eval()(x), plain.eval()(x))
        torch.manual_seed(1)
        assert not torch.allclose(dropped.train()(x), plain.train()(x))


@pytest.mark.parametrize("name", MODELS)
def test_each_block_zero_inits_its_last_bn(name):
    blocks = [m for m in timm.create_model(name).modules() if isinstance(m, Block)]
    assert blocks and all(not b.conv3[1].weight.any() for b in blocks)
    kept = [m for m in timm.create_model(name, zero_init_last=False).modules() if isinstance(m, Block)]
    assert all(b.conv3[1].weight.all() for b in kept)


def test_pretrained_is_a_one_line_error():
    with pytest.raises(ValueError) as err:
        timm.create_model("qlnet", **train_py_kwargs(pretrained=True))
    assert "pretrained=False" in str(err.value) and "\n" not in str(err.value)


def test_grad_checkpointing_and_layer_groups():
    """train.py's --grad-checkpointing and --layer-decay use ``set_grad_checkpointing`` and ``group_matcher``."""
    from timm.models import group_parameters

    model = timm.create_model("qlnet", num_classes=3).train()
    x = images(seed=1)
    torch.manual_seed(0)
    plain = model(x)
    model.set_grad_checkpointing(True)
    torch.manual_seed(0)
    checkpointed = model(x)
    assert torch.allclose(plain, checkpointed, atol=1e-5)
    checkpointed.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    groups = group_parameters(model, model.group_matcher())
    assert sum(len(names) for names in groups.values()) == len(list(model.parameters()))
    assert len(groups) == 1 + 3 + 4 + 6 + 3 + 1  # stem, one group per block, the head
