import csv
from pathlib import Path

import pytest
import timm
import torch
from fvcore.nn import FlopCountAnalysis

import ablate  # noqa: F401
from ablate import cli, costs
from ablate.models import Block, BlockConfig, build_model

PUBLISHED = {row["model"]: row
             for row in csv.DictReader(open(Path(ablate.__file__).parent / "resources" / "published_results.csv"))}


@pytest.mark.parametrize("timm_name,published",
                         [("resnet50", "R50"), ("resnet50_max", "R50-max"), ("resnet50_hybrid", "R50-hybrid")])
def test_reference_costs_round_to_published(timm_name, published):
    c = costs.measure(timm.create_model(timm_name), (3, 224, 224), timing=False)
    assert round(c.params / 1e6, 1) == float(PUBLISHED[published]["params_m"])
    assert round(c.macs / 1e9, 1) == float(PUBLISHED[published]["macs_g"])


def test_split_multiply_costs_are_counted_exactly():
    cfg = BlockConfig("multiply", "maxpool", 0.5)
    block = Block(8, 8, 1, 4, cfg).eval()
    c = costs.measure(block, (8, 5, 5), timing=False)
    assert c.elementwise_by_op["mul"] == 4 * 5 * 5  # one product per inner channel and position
    assert c.elementwise_by_op["max_pool2d"] == 4 * 5 * 5 * 9
    assert c.macs == 8 * 8 * 25 + 4 * 8 * 25  # conv1 (to 2×inner) + conv3


@pytest.mark.parametrize("config,ops", [("multiply-dwconv-w1", {"mul"}),
                                        ("hardball-dwconv-w1", {"sum", "rsqrt", "mul"}),
                                        ("relu-twist-w1", {"mul", "add"})])
def test_elementwise_ops_that_fvcore_alone_misses(config, ops):
    model = build_model(config, "cifar", 10).eval()
    c = costs.measure(model, timing=False)
    assert c.elementwise_ops > 0
    assert ops <= {k for k, v in c.elementwise_by_op.items() if v > 0}
    plain = FlopCountAnalysis(model, torch.zeros(1, 3, 32, 32))
    plain.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    assert not ops & set(plain.by_operator())  # fvcore's defaults count none of them
    assert c.macs == sum(v for k, v in plain.by_operator().items() if k in costs.MAC_OPS)


def test_elementwise_cost_separates_block_designs():
    relu = costs.measure(build_model("relu-dwconv-w1", "cifar", 10), timing=False)
    twist = costs.measure(build_model("relu-twist-w1", "cifar", 10), timing=False)
    assert "mul" not in relu.elementwise_by_op
    assert twist.elementwise_ops > relu.elementwise_ops
    assert twist.macs > relu.macs  # twist's three depthwise kernels


def test_timing_and_row():
    c = costs.measure(build_model("relu-maxpool-w0.25", "cifar", 10), batch_size=4, repeats=2)
    assert c.latency_ms > 0 and c.throughput > 0
    row = c.as_row()
    assert {"params", "macs", "elementwise_ops", "activations", "latency_ms", "throughput"} <= set(row)
    assert row["input_size"] == "3x32x32" and not c.unsupported_ops


def test_cost_command_prints_a_table(capsys):
    argv = ["resnet50_max", "relu-twist-w1", "--image-size", "64", "--batch-size", "2"]
    assert cli.main(["costs", *argv]) == 0
    out = capsys.readouterr().out
    assert "resnet50_max" in out and "relu-twist-w1" in out and "MACs (G)" in out and "device:" in out
    assert "3x64x64" in out


def test_cost_command_rejects_unknown_models(capsys):
    assert cli.main(["costs", "no-such-model", "--no-timing"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "neither a timm model nor a block config" in err  # progress line + error
