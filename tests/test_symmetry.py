import pytest
import timm
import torch

from ablate.models import build_model
from ablate.models.symmetry import symmetry_gap


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
