"""Cost metrics of a model: params, MACs, element-wise ops, activations, latency and throughput.

fvcore counts one multiply-accumulate as one "flop" and treats element-wise ops (mul, add, div, pooling,
the norms of hardball) as free, which would make the multiply, hardball and twist blocks look costless. We
register handles for those ops and report two separate numbers: ``macs`` (conv / linear / matmul
multiply-accumulates, comparable with the papers' "FLOPs") and ``elementwise_ops`` (everything else: BN,
activations, products, sums, pooling windows).

``python -m ablate costs resnet50 resnet50_max relu-twist-w1`` (the command line's ``costs``) prints a cost table.
"""

from __future__ import annotations

import statistics
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from math import prod
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

with warnings.catch_warnings():  # fvcore jit-scripts its focal loss at import, which torch now flags as deprecated
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis
    from fvcore.nn.jit_handles import elementwise_flop_counter, get_shape

from ablate.core.errors import UsageError

MAC_OPS = frozenset({"conv", "_convolution", "addmm", "linear", "matmul", "mm", "bmm", "einsum"})


def _pool_window_counter(inputs: list[Any], outputs: list[Any]) -> int:
    """A pooling op reads kernel_h × kernel_w inputs per output element."""
    kernel = inputs[1].toIValue()
    if kernel is None:  # a traced prim::ListConstruct: read its constant elements
        kernel = [v.toIValue() for v in inputs[1].node().inputs()]
    kernel = list(kernel) if isinstance(kernel, (list, tuple)) else [kernel]
    area = prod(kernel) if len(kernel) > 1 else kernel[0] ** 2
    return prod(get_shape(outputs[0])) * area


_per_output = elementwise_flop_counter(0, 1)
_per_input = elementwise_flop_counter(1, 0)

ELEMENTWISE_HANDLES: dict[str, Callable[[list[Any], list[Any]], Any]] = {
    **{f"aten::{op}": _per_output for op in (
        "mul", "mul_", "add", "add_", "sub", "sub_", "div", "div_", "sqrt", "rsqrt", "pow", "clamp", "clamp_",
        "clamp_min", "clamp_max", "relu", "relu_", "where", "maximum", "minimum", "exp", "sigmoid", "hardtanh_",
    )},
    "aten::sum": _per_input,
    "aten::norm": _per_input,
    "aten::linalg_vector_norm": _per_input,
    "aten::max_pool2d": _pool_window_counter,
    "aten::avg_pool2d": _pool_window_counter,
    # twist's coordinate grids: constants of the input's shape (cached in eager mode), no per-image arithmetic
    "aten::linspace": lambda inputs, outputs: 0,
    "aten::meshgrid": lambda inputs, outputs: 0,
}


@dataclass
class Costs:
    """One model's costs, ready to be a table row. Counts are per image; times are measured on ``device``."""

    params: int
    macs: int
    elementwise_ops: int
    activations: int
    latency_ms: float = float("nan")
    throughput: float = float("nan")
    input_size: tuple[int, int, int] = (3, 224, 224)
    batch_size: int = 0
    device: str = "cpu"
    elementwise_by_op: dict[str, int] = field(default_factory=dict)
    unsupported_ops: dict[str, int] = field(default_factory=dict)

    @property
    def uncounted_ops(self) -> str:
        """The ops fvcore could not count, with how often each ran (``aten::roll ×4``), '' when every op counted.

        Their work is in neither ``macs`` nor ``elementwise_ops``: the numbers are a lower bound for such a model,
        which the table and the report say rather than count the ops as free.
        """
        return ", ".join(f"{op} ×{n}" for op, n in sorted(self.unsupported_ops.items()))

    def as_row(self) -> dict[str, Any]:
        """Flat columns for the results table (per-op breakdowns stay out of it; the uncounted ops named)."""
        row = asdict(self)
        row.pop("elementwise_by_op")
        row.pop("unsupported_ops")
        row["uncounted_ops"] = self.uncounted_ops
        row["input_size"] = "x".join(map(str, self.input_size))
        return row


@contextmanager
def _counting(model: nn.Module, input_size: Sequence[int]) -> Iterator[torch.Tensor]:
    """One zero image on the model's device, the model in eval mode without grad and warnings while counting (its
    mode restored after)."""
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            yield torch.zeros(1, *input_size, device=next(model.parameters()).device)
    finally:
        model.train(was_training)


def _flop_analysis(model: nn.Module, x: torch.Tensor) -> FlopCountAnalysis:
    """fvcore's analysis of one forward pass with ablate's element-wise handles, its warnings silenced."""
    flops = FlopCountAnalysis(model, x).set_op_handle(**ELEMENTWISE_HANDLES)
    flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    return flops


def count_macs(model: nn.Module, input_size: Sequence[int]) -> int:
    """The ``macs`` of ``count_ops`` alone (one trace instead of two), for solvers that count many models.

    Args:
        model: The network; counted in eval mode, its mode restored.
        input_size: (channels, height, width) of one image.

    Returns:
        Multiply-accumulates of conv / linear / matmul ops for one image.
    """
    with _counting(model, input_size) as x:
        by_op = _flop_analysis(model, x).by_operator()
    return int(sum(v for k, v in by_op.items() if k in MAC_OPS))


def count_ops(model: nn.Module, input_size: Sequence[int]) -> tuple[int, dict[str, int], dict[str, int], int]:
    """MACs, element-wise ops by operator, unsupported ops and activations for one image, in eval mode.

    fvcore's tracer warnings and unsupported-op warnings are captured (returned), not printed.
    """
    with _counting(model, input_size) as x:
        flops = _flop_analysis(model, x)
        by_op = flops.by_operator()
        unsupported = dict(flops.unsupported_ops())
        acts = ActivationCountAnalysis(model, x)
        acts.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        activations = int(acts.total())
    macs = sum(v for k, v in by_op.items() if k in MAC_OPS)
    elementwise = {k: int(v) for k, v in by_op.items() if k not in MAC_OPS and v}
    return int(macs), elementwise, unsupported, activations


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_forward(model: nn.Module, batch: torch.Tensor, *, warmup: int = 3, repeats: int = 10,
                 amp: bool = False) -> float:
    """Median seconds of one forward pass, timm-style: warm-up, synchronize on CUDA, median of repeats."""
    device = batch.device
    autocast = torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16,
                              enabled=amp)
    times = []
    with torch.inference_mode(), autocast:
        for i in range(warmup + repeats):
            _sync(device)
            start = time.perf_counter()
            model(batch)
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def default_input_size(model: nn.Module) -> tuple[int, int, int]:
    macro = getattr(model, "macro", None)
    if macro is not None:
        return tuple(macro.input_size)
    return tuple(getattr(model, "pretrained_cfg", {}).get("input_size", (3, 224, 224)))


def measure(model: nn.Module, input_size: Sequence[int] | None = None, *, device: str | torch.device = "cpu",
            batch_size: int = 32, timing: bool = True, channels_last: bool | None = None, amp: bool | None = None,
            repeats: int = 10) -> Costs:
    """Count and (optionally) time a model.

    Args:
        model: any ``nn.Module``; counted in eval mode for one image.
        input_size: (C, H, W); default the model's own (its macro's, or its ``pretrained_cfg``'s).
        device: where to count and time.
        batch_size: batch of the throughput measurement.
        timing: also measure batch-1 latency and throughput (median of ``repeats`` after a warm-up).
        channels_last: memory format while timing; default on for CUDA, off for CPU.
        amp: autocast while timing; default on for CUDA, off for CPU.
        repeats: timed repetitions of the latency measurement.

    Returns:
        Costs: params, MACs (conv/linear multiply-accumulates), element-wise ops, activations, and with ``timing``
        latency (ms) and throughput (images/s).

    Example:
        >>> measure(build_model("relu-dwconv-w1", "cifar"), timing=False).macs  # doctest: +SKIP
    """
    device = torch.device(device)
    input_size = tuple(input_size or default_input_size(model))
    model = model.to(device)
    macs, elementwise, unsupported, activations = count_ops(model, input_size)
    costs = Costs(
        params=sum(p.numel() for p in model.parameters()), macs=macs, elementwise_ops=sum(elementwise.values()),
        activations=activations, input_size=input_size, batch_size=batch_size, device=str(device),
        elementwise_by_op=elementwise, unsupported_ops=unsupported,
    )
    if timing:
        on_cuda = device.type == "cuda"
        channels_last = on_cuda if channels_last is None else channels_last
        amp = on_cuda if amp is None else amp
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        was_training = model.training
        model.eval().to(memory_format=memory_format)
        single = torch.randn(1, *input_size, device=device).to(memory_format=memory_format)
        batch = torch.randn(batch_size, *input_size, device=device).to(memory_format=memory_format)
        costs.latency_ms = 1e3 * time_forward(model, single, repeats=repeats, amp=amp)
        costs.throughput = batch_size / time_forward(model, batch, repeats=max(3, repeats // 3), amp=amp)
        model.train(was_training)
    return costs


def resolve_model(name: str, *, macro: str, num_classes: int) -> nn.Module:
    """A timm model name (``resnet50``, ``qlnet``) or a block config string (``relu-twist-w1``) on ``macro``."""
    import timm

    import ablate  # noqa: F401  (registers the reference models)
    from ablate.models import build_model
    from ablate.models.blocks import BlockConfig

    if timm.is_model(name):
        return timm.create_model(name, num_classes=num_classes)
    try:
        config = BlockConfig.parse(name)
    except ValueError as err:
        raise UsageError(f"{name!r} is neither a timm model nor a block config ({err})") from None
    return build_model(config, macro, num_classes)


def cost_table(names: Sequence[str], *, macro: str = "resnet50", image_size: int | None = None,
               num_classes: int = 1000, device: str = "cpu", batch_size: int = 32, timing: bool = True,
               progress: Callable[[str], None] | None = None):
    """A pandas table of costs, one row per model, with units in the column names."""
    import pandas as pd

    rows = []
    for name in names:
        if progress:
            progress(name)
        model = resolve_model(name, macro=macro, num_classes=num_classes)
        size = (3, image_size, image_size) if image_size else None
        c = measure(model, size, device=device, batch_size=batch_size, timing=timing)
        rows.append({
            "model": name, "params (M)": c.params / 1e6, "MACs (G)": c.macs / 1e9,
            "elementwise (M)": c.elementwise_ops / 1e6, "activations (M)": c.activations / 1e6,
            "latency bs1 (ms)": c.latency_ms, f"throughput bs{batch_size} (img/s)": c.throughput,
            "input": "x".join(map(str, c.input_size)), "uncounted ops": c.uncounted_ops or "—",
        })
    return pd.DataFrame(rows)


if __name__ == "__main__":  # the command is the command line's: ablate.cli sits above this module
    from ablate.core.errors import moved_entry

    moved_entry("ablate.costs", "costs")
