"""What a GPU run would expose, checked on CPU: graph breaks under torch.compile, bf16 radial activations, host
syncs and per-step launch overhead in the training step."""

import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import load_bench_gpu
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ablate.models import build_model
from ablate.models.layers import Twist, coord_grids, hardball, softball
from ablate.training import Precision, make_run, make_step, train_epoch

ROOT = Path(__file__).resolve().parents[1]
# every spatial op and every nonlinearity at least once, in the smallest macro
COVERING = ("relu-conv3x3-w0.25", "multiply-dwconv-w1", "hardball-maxpool-w1", "relu-avgpool-w1",
            "hardball-twist-w1", "multiply-hybrid-w0.25")
SYNC_OPS = frozenset({"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2", "unique_dim",
                      "unique_consecutive", "equal", "is_nonzero"})  # aten ops that copy a device value to the host


@pytest.fixture(scope="module")
def bench():
    """The bench's training paths (``benchmarks/gpu_paths.py``, importable once bench_gpu is loaded)."""
    load_bench_gpu()
    return sys.modules["gpu_paths"]


class AtenOps(TorchDispatchMode):
    """Counts the aten ops run (views left out: they launch no kernel on a GPU)."""

    def __init__(self):
        super().__init__()
        self.ops: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view:
            self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))

    def syncs(self) -> int:
        return sum(n for name, n in self.ops.items() if name in SYNC_OPS)


# --- torch.compile ---


@pytest.mark.parametrize("config", COVERING)
def test_blocks_trace_into_one_graph(config):
    """No graph break in any spatial op or nonlinearity, and no lru_cache traced through (Twist's grids)."""
    torch._dynamo.reset()
    model = build_model(config, "cifar-tiny", 10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explained = torch._dynamo.explain(model)(torch.randn(2, 3, 32, 32))
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons
    assert not [w for w in caught if "lru_cache" in str(w.message)]


def test_compiled_twist_trains_like_eager_in_one_graph():
    """fullgraph=True through forward and backward (aot_eager: dynamo + AOT autograd, no codegen)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    twist = Twist(4, stride=2)
    x = torch.randn(2, 4, 12, 10)
    eager_out = twist(x)
    eager_out.square().sum().backward()
    eager_grad, twist.conv.weight.grad = twist.conv.weight.grad, None
    compiled = torch.compile(twist, backend="aot_eager", fullgraph=True)
    out = compiled(x)
    out.square().sum().backward()
    assert torch.allclose(out, eager_out, atol=1e-6)
    assert torch.allclose(twist.conv.weight.grad, eager_grad, atol=1e-5)


def test_eager_twist_still_reads_the_cached_grids():
    twist = Twist(3)
    twist(torch.randn(1, 3, 7, 5))
    hits = coord_grids.cache_info().hits
    twist(torch.randn(1, 3, 7, 5))
    assert coord_grids.cache_info().hits == hits + 1


# --- bf16 ---


@pytest.mark.parametrize("fn", [hardball, softball])
@pytest.mark.parametrize("magnitude", [0.0, 1e-20, 1.0, 1e4, 1e12, 1e18])
def test_radial_activations_are_finite_under_bf16_autocast(fn, magnitude):
    """A conv output in bf16 (autocast), zero or huge: finite output and gradients, and inside the ball.

    Exact projection needs |x|²·C within fp32 (|x| ≲ 1e18 at C = 64); beyond it the output is 0, still finite.
    """
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 64, 1)
    x = (torch.randn(2, 8, 5, 5) * magnitude).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fn(conv(x), 64.0)
    assert y.dtype == torch.bfloat16
    y.float().square().mean().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all() and torch.isfinite(conv.weight.grad).all()
    assert (y.float().norm(dim=1) <= 8.0 * 1.02).all()  # bf16 rounding of R·x/|x|


@pytest.mark.parametrize("config", ["hardball-twist-w1", "multiply-dwconv-w1", "hardball-avgpool-w2"])
def test_radial_and_multiply_blocks_train_finite_under_bf16(config):
    """SGD steps at lr 0.1 under bf16 autocast on inputs far off the normalized scale, and on zeros."""
    torch.manual_seed(0)
    model = build_model(config, "cifar-tiny", 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    labels = torch.randint(0, 10, (4,))
    for images in (torch.randn(4, 3, 32, 32) * 1e3, torch.zeros(4, 3, 32, 32), torch.randn(4, 3, 32, 32)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())
        optimizer.step()


# --- the training step: host syncs and launch overhead ---


def trainer_on(bench, config: str, steps: int, precision: Precision | None = None):
    protocol = bench.trainer_protocol(bench.Settings.smoke_run(torch.device("cpu")))
    data = bench.synthetic_splits(protocol, torch.device("cpu"), steps)
    run = make_run(bench.BlockConfig.parse(config), protocol, data, data.device, 0)
    if precision is not None:
        run.precision = precision
    step = make_step(run, nn.CrossEntropyLoss(), run.model, data.device)
    return run, step, protocol, data


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_an_epoch_syncs_with_the_host_once_whatever_its_length(bench, dtype):
    """No .item(), no branching on tensors and no data-dependent shapes per step: one sync, at the epoch's end.

    (fp16's GradScaler syncs once per step by design, to skip steps with inf gradients; bf16 needs no scaler.)
    """
    precision = Precision(dtype, torch.amp.GradScaler("cpu", enabled=False))
    for steps in (2, 6):
        run, step, protocol, data = trainer_on(bench, "hardball-twist-w1", steps, precision)
        with AtenOps() as ops:
            train_epoch(run, step, protocol, data, data.device)
        assert ops.syncs() == 1, ops.ops


def test_trainer_step_adds_few_kernels_over_the_plain_loop(bench):
    """The data path and bookkeeping cost a bounded number of extra ops (GPU kernel launches) per step."""
    steps = 3
    protocol = bench.trainer_protocol(bench.Settings.smoke_run(torch.device("cpu")))
    data = bench.synthetic_splits(protocol, torch.device("cpu"), steps)
    first = bench.synthetic_splits(protocol, torch.device("cpu"), 1, seed=1)
    paths = bench.trainer_paths(bench.BlockConfig.parse("relu-conv3x3-w0.25"), protocol, data, first, None, False)
    counts = {}
    for name, path in paths.items():
        path.epoch()
        with AtenOps() as ops:
            path.epoch()
        counts[name] = ops.ops
    extra = (sum(counts["trainer"].values()) - sum(counts["reference"].values())) / steps
    assert extra <= 24, counts["trainer"] - counts["reference"]  # 18 per step today, + 3 per epoch
    assert not counts["reference"] - counts["trainer"]  # the same model and optimizer work, nothing less
