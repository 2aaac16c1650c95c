"""The configurable residual bottleneck block and the frozen config that names it.

  x ─► conv1 1×1 ConvBN ─► N_inner ─► S (carries the stride) ─► [BN, N_spatial] ─► conv3 1×1 ConvBN ─► (+ skip) ─► N_out

The nonlinearity scheme decides N_inner, N_spatial and N_out (and whether conv1 doubles its width for the
split-multiply); the spatial op decides S and whether BN + N_spatial follow it (only when S has weights).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch
from timm.layers import DropPath
from torch import nn

from ablate.core.registry import Registry, lookup
from ablate.models.layers import SPATIAL_OPS, Hardball, SplitMultiply, conv_bn


@dataclass(frozen=True)
class NonlinearityScheme:
    """Where a scheme puts its nonlinearities. Each factory takes the channel count it acts on."""

    conv1_factor: int
    inner: Callable[[int], nn.Module]
    after_spatial: Callable[[int], nn.Module]
    out: Callable[[int, bool], nn.Module]  # (out channels, is downsampling block)
    init_nonlinearity: str  # kaiming gain: 'relu' for ReLU nets, 'linear' for QLNet-style nets
    description: str


def _identity(*_: object) -> nn.Module:
    return nn.Identity()


NONLINEARITIES: Registry[NonlinearityScheme] = Registry("nonlinearity", {
    "relu": NonlinearityScheme(
        1, lambda c: nn.ReLU(inplace=True), lambda c: nn.ReLU(inplace=True), lambda c, down: nn.ReLU(inplace=True),
        "relu", "ReLU after conv1, after a weighted S and after the add (ResNet50)",
    ),
    "multiply": NonlinearityScheme(
        2, lambda c: SplitMultiply(), _identity, lambda c, down: Hardball(c) if down else nn.Identity(),
        "linear", "conv1 to 2× width, halves multiplied; hardball after the add in downsampling blocks (QLNet)",
    ),
    "hardball": NonlinearityScheme(
        1, lambda c: Hardball(c), _identity, lambda c, down: Hardball(c),
        "linear", "hardball after conv1 and after the add; no pointwise activation",
    ),
})

_CONFIG_PATTERN = re.compile(r"^(?P<nonlinearity>[a-z0-9_]+)-(?P<spatial>[a-z0-9_]+)"
                             r"-w(?P<width>[0-9]*\.?[0-9]+(?:e-?[0-9]+)?)$")


@dataclass(frozen=True)
class BlockConfig:
    """One point of the block search space; ``str(cfg)`` is its stable name, e.g. ``relu-maxpool-w0.25``.

    Attributes:
        nonlinearity: how the block is made nonlinear, a ``NONLINEARITIES`` name (``relu``, ``multiply``, ``hardball``).
        spatial: the 3×3 spatial operation, a ``SPATIAL_OPS`` name (``conv3x3``, ``dwconv``, ``maxpool``, ``twist``, …).
        width: inner channels = round(width × the block's output channels) (ResNet50's bottleneck: 0.25).

    Raises:
        ValueError: an unknown nonlinearity or spatial op, or a width that is not a positive number.

    Example:
        >>> BlockConfig.parse("relu-maxpool-w0.25") == BlockConfig("relu", "maxpool", 0.25)
        True
    """

    nonlinearity: str = "relu"
    spatial: str = "conv3x3"
    width: float = 0.25

    def __post_init__(self) -> None:
        lookup(NONLINEARITIES, self.nonlinearity, "nonlinearity")
        lookup(SPATIAL_OPS, self.spatial, "spatial op")
        if not isinstance(self.width, (int, float)) or not self.width > 0:
            raise ValueError(f"width must be a positive number, got {self.width!r}")
        object.__setattr__(self, "width", float(self.width))

    @property
    def name(self) -> str:
        return f"{self.nonlinearity}-{self.spatial}-w{self.width:g}"

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, text: str) -> "BlockConfig":
        """Inverse of ``str``: ``BlockConfig.parse("multiply-dwconv-w4")``."""
        match = _CONFIG_PATTERN.match(text.strip())
        if match is None:
            raise ValueError(f"cannot parse block config {text!r}: "
                             "expected NONLINEARITY-SPATIAL-wWIDTH, e.g. relu-maxpool-w0.25")
        return cls(match["nonlinearity"], match["spatial"], float(match["width"]))

    @classmethod
    def coerce(cls, config: "BlockConfig | str") -> "BlockConfig":
        """A BlockConfig as is, or parsed from its string."""
        return cls.parse(config) if isinstance(config, str) else config

    def inner_channels(self, out_channels: int) -> int:
        """Inner width = round(width × block output channels), at least 1."""
        return max(1, round(self.width * out_channels))


class Block(nn.Module):
    """Residual bottleneck block; the skip is a strided 1×1 ConvBN when the shape changes, else identity.

    Args:
        in_channels: channels of the block's input.
        out_channels: channels of the block's output (and of the residual stream it writes).
        stride: stride of the spatial op and of the projection skip.
        inner: inner width (conv1 produces ``inner × conv1_factor`` channels).
        config: the block config (nonlinearity scheme and spatial op).
        drop_path: stochastic-depth rate on the residual branch (timm's ``DropPath``; 0 for none).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, inner: int, config: BlockConfig,
                 drop_path: float = 0.0):
        super().__init__()
        scheme = NONLINEARITIES[config.nonlinearity]
        spatial = SPATIAL_OPS[config.spatial]
        self.downsampling = stride != 1 or in_channels != out_channels
        self.conv1 = conv_bn(in_channels, inner * scheme.conv1_factor)
        self.act1 = scheme.inner(inner)
        self.spatial = spatial.build(inner, stride)
        weighted = spatial.has_weights(stride)
        self.bn2 = nn.BatchNorm2d(inner) if weighted else nn.Identity()
        self.act2 = scheme.after_spatial(inner) if weighted else nn.Identity()
        self.conv3 = conv_bn(inner, out_channels)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.skip = conv_bn(in_channels, out_channels, 1, stride) if self.downsampling else nn.Identity()
        self.act3 = scheme.out(out_channels, self.downsampling)

    def zero_init_last(self) -> None:
        """Zero the residual branch's last BN scale, so that the block starts as its skip (as timm's blocks do)."""
        nn.init.zeros_(self.conv3[1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.conv1(x))
        y = self.act2(self.bn2(self.spatial(y)))
        return self.act3(self.drop_path(self.conv3(y)) + self.skip(x))
