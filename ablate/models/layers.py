"""Block layers: radial activations, the split-multiply, the twist conv and the spatial-op registry."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch
from torch import nn

from ablate.core.registry import Registry


def conv_bn(in_ch: int, out_ch: int, kernel_size: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv (no bias) + BatchNorm, the unit every block is made of."""
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(out_ch))


def hardball(x: torch.Tensor, radius2: float, eps: float = 1e-12) -> torch.Tensor:
    """Project each channel vector (per n, h, w) onto the ball of squared radius ``radius2``.

    Inside the ball x is returned unchanged; outside it is scaled to R·x/|x|. The scale min(1, R/|x|) uses
    |x|² clamped away from zero, so x = 0 gives 0 and a finite gradient (a bare sqrt would give NaN), and it
    is computed in fp32 so that the sum of squares cannot overflow under fp16 autocast.
    """
    norm2 = x.float().pow(2).sum(dim=1, keepdim=True).clamp_min(eps)
    scale = (math.sqrt(radius2) * norm2.rsqrt()).clamp(max=1.0)
    return x * scale.to(x.dtype)


def softball(x: torch.Tensor, radius2: float) -> torch.Tensor:
    """Smooth sibling of hardball: x / sqrt(1 + |x|²/radius2); radial, maps into the open ball."""
    norm2 = x.float().pow(2).sum(dim=1, keepdim=True)
    return x * torch.rsqrt(1.0 + norm2 / radius2).to(x.dtype)


class Hardball(nn.Module):
    """Hardball with radius2 = channel count by default (R = √C, as QLNet's blocks use)."""

    def __init__(self, channels: int, radius2: float | None = None):
        super().__init__()
        self.radius2 = float(channels if radius2 is None else radius2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return hardball(x, self.radius2)

    def extra_repr(self) -> str:
        return f"radius2={self.radius2:g}"


class Softball(Hardball):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return softball(x, self.radius2)


class SplitMultiply(nn.Module):
    """QLNet's nonlinearity: split the channels into two halves and multiply them element-wise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


@lru_cache(maxsize=64)
def coord_grids(height: int, width: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Column (X) and row (Y) coordinates scaled to [-1, 1], shaped (1, 1, H, W); cached per shape/device/dtype.

    Built outside inference mode so a grid first made under `torch.inference_mode()` (costs, timing)
    can still be used by a later training step.
    """
    with torch.inference_mode(False):
        return _make_coord_grids(height, width, device, dtype)


def _make_coord_grids(height: int, width: int, device: torch.device,
                      dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    ys = (torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype) if height > 1
          else torch.zeros(1, device=device, dtype=dtype))
    xs = (torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype) if width > 1
          else torch.zeros(1, device=device, dtype=dtype))
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return grid_x[None, None].contiguous(), grid_y[None, None].contiguous()


class Twist(nn.Module):
    """Depthwise 3×3 conv with variable coefficients: dw(x) + X·dw_x(x) + Y·dw_y(x).

    The three depthwise kernels run as one grouped conv with 3 outputs per channel, so the cost is one
    conv launch plus two element-wise products and sums with the coordinate grids. Eager mode reads the
    grids from the ``coord_grids`` cache; under ``torch.compile`` they are built in the graph instead (see
    ``grids``), where the compiler folds them into the element-wise kernel.
    """

    def __init__(self, channels: int, stride: int = 1):
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv2d(channels, 3 * channels, 3, stride, 1, groups=channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        n, _, h, w = y.shape
        y = y.view(n, self.channels, 3, h, w)
        grid_x, grid_y = self.grids(h, w, y.device, y.dtype)
        return y[:, :, 0] + grid_x * y[:, :, 1] + grid_y * y[:, :, 2]

    @staticmethod
    def grids(height: int, width: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The cached grids in eager mode; fresh in-graph ones while compiling.

        Dynamo would trace through the ``lru_cache`` wrapper anyway (with a warning that it ignores the cache)
        and through its ``inference_mode(False)``; building the grids in the graph says so explicitly and
        leaves a plain ``linspace``/``meshgrid`` that the compiler turns into index arithmetic.
        """
        if torch.compiler.is_compiling():
            return _make_coord_grids(height, width, device, dtype)
        return coord_grids(height, width, device, dtype)


@dataclass(frozen=True)
class SpatialOp:
    """A 3×3 spatial operation: how to build it and whether it has weights (then BN + activation follow)."""

    build: Callable[[int, int], nn.Module]  # (channels, stride) -> module
    weighted: bool
    description: str
    weights_only_when_strided: bool = False

    def has_weights(self, stride: int) -> bool:
        """Whether BN + the scheme's inner activation follow the op in a block of this stride."""
        return self.weighted and (stride != 1 or not self.weights_only_when_strided)


def _hybrid(channels: int, stride: int) -> nn.Module:
    """PfLayer's hybrid: max-pool in stride-1 blocks; avg-pool 2×2 then a dense 3×3 conv in stride-2 blocks."""
    if stride == 1:
        return nn.MaxPool2d(3, 1, 1)
    return nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(channels, channels, 3, 1, 1, bias=False))


SPATIAL_OPS: Registry[SpatialOp] = Registry("spatial op", {
    "conv3x3": SpatialOp(lambda c, s: nn.Conv2d(c, c, 3, s, 1, bias=False), True, "dense 3×3 conv (ResNet50)"),
    "dwconv": SpatialOp(lambda c, s: nn.Conv2d(c, c, 3, s, 1, groups=c, bias=False), True, "depthwise 3×3 conv"),
    "maxpool": SpatialOp(lambda c, s: nn.MaxPool2d(3, s, 1), False, "3×3 max-pool (R50-max)"),
    "avgpool": SpatialOp(lambda c, s: nn.AvgPool2d(3, s, 1, count_include_pad=False), False, "3×3 avg-pool"),
    "twist": SpatialOp(lambda c, s: Twist(c, s), True, "depthwise variable-coefficient 3×3 conv"),
    "hybrid": SpatialOp(_hybrid, True, "max-pool, or avg-pool 2×2 + 3×3 conv when strided (R50-hybrid)", True),
})

