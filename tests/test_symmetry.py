import pytest
import timm
import torch

from ablate.models import build_model
from ablate.models.symmetry import SYMMETRY_RTOL, symmetry_columns, symmetry_gap


def test_qlnet_keeps_its_logits_under_rotation(randomize_bn):
    model = randomize_bn(timm.create_model("qlnet")).eval()
    assert symmetry_gap(model, (3, 64, 64)) < 1e-4


def test_relu_resnet50_does_not(randomize_bn):
    model = randomize_bn(build_model("relu-conv3x3-w0.25", "resnet50", 1000)).eval()
    with torch.no_grad():
        scale = model(torch.randn(2, 3, 64, 64)).abs().max().item()
    assert symmetry_gap(model, (3, 64, 64)) > 0.01 * scale


@pytest.mark.parametrize("config", ["hardball-dwconv-w1", "multiply-twist-w2", "hardball-maxpool-w1"])
def test_radial_block_designs_have_the_symmetry(randomize_bn, config):
    model = randomize_bn(build_model(config, "cifar", 10))
    assert symmetry_gap(model, (3, 32, 32)) < 1e-4


def test_symmetry_gap_rejects_foreign_models():
    with pytest.raises(TypeError):
        symmetry_gap(timm.create_model("resnet18"))


def briefly_trained(config, steps=4):
    """A few SGD steps on random 16×16 data: trained weights and BN statistics, not the zero-init start."""
    torch.manual_seed(0)
    model = build_model(config, "cifar-tiny", 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model.train()(torch.randn(16, 3, 16, 16)), torch.randint(0, 10, (16,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_symmetry_columns_of_trained_models():
    symmetric = symmetry_columns(briefly_trained("multiply-dwconv-w2"), (3, 16, 16))
    broken = symmetry_columns(briefly_trained("relu-conv3x3-w0.25"), (3, 16, 16))
    assert set(symmetric) == set(broken) == {"symmetry_gap", "symmetric"}
    assert symmetric["symmetric"] is True and symmetric["symmetry_gap"] < 1e-5
    assert broken["symmetric"] is False and broken["symmetry_gap"] > 1e-2


def test_symmetry_tolerance_is_relative_to_the_logits():
    model = briefly_trained("multiply-dwconv-w2")
    gap = symmetry_columns(model, (3, 16, 16))["symmetry_gap"]
    assert 0 < gap and symmetry_columns(model, (3, 16, 16), rtol=0.0)["symmetric"] is False
    assert 0 < SYMMETRY_RTOL < 1e-2


def test_symmetry_needs_a_classifier():
    with pytest.raises(ValueError, match="num_classes > 0"):
        symmetry_gap(build_model("multiply-dwconv-w1", "cifar-tiny", num_classes=0))
