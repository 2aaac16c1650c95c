"""Macro networks: a stem, stages of blocks and a pooled linear head, shared by every candidate and baseline.

Every network built here has the same attributes (``stem``, ``stages``, ``final_act``, ``fc``) so that the
cost counter and the symmetry check can walk any of them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from ablate.models.blocks import NONLINEARITIES, Block, BlockConfig
from ablate.models.layers import Hardball


def imagenet_stem(channels: int) -> nn.Module:
    """ResNet's 7×7/2 conv + BN + ReLU + 3×3/2 max-pool (224² → 56²)."""
    return nn.Sequential(
        nn.Conv2d(3, channels, 7, 2, 3, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    )


def cifar_stem(channels: int) -> nn.Module:
    """3×3 stride-1 conv + BN + ReLU: keeps 32² inputs at full resolution for the first stage."""
    return nn.Sequential(nn.Conv2d(3, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


STEMS: dict[str, Callable[[int], nn.Module]] = {"imagenet": imagenet_stem, "cifar": cifar_stem}


@dataclass(frozen=True)
class MacroConfig:
    """A network skeleton: stem kind and width, blocks per stage and block output channels per stage."""

    name: str
    stem: str
    stem_channels: int
    depths: tuple[int, ...]
    channels: tuple[int, ...]
    input_size: tuple[int, int, int]
    description: str = ""

    def stage_strides(self) -> tuple[int, ...]:
        """First stage keeps resolution (the stem already reduced it); every later stage halves it."""
        return (1,) + (2,) * (len(self.depths) - 1)


MACROS: dict[str, MacroConfig] = {
    m.name: m
    for m in (
        MacroConfig("resnet50", "imagenet", 64, (3, 4, 6, 3), (256, 512, 1024, 2048), (3, 224, 224),
                    "ResNet50 skeleton for 224² inputs"),
        MacroConfig("cifar", "cifar", 32, (1, 1, 1), (64, 128, 256), (3, 32, 32),
                    "small 32² skeleton sized for a CPU"),
        MacroConfig("cifar-tiny", "cifar", 16, (1, 1), (32, 64), (3, 32, 32),
                    "two small stages, for smoke tests and CI"),
        MacroConfig("cifar-resnet50", "cifar", 64, (3, 4, 6, 3), (256, 512, 1024, 2048), (3, 32, 32),
                    "ResNet50 stages behind a 3×3 stride-1 stem, for CIFAR on a GPU"),
    )
}


@dataclass(frozen=True)
class BlockSpec:
    in_channels: int
    out_channels: int
    stride: int
    inner: int


InnerRule = Callable[[int, int], int]  # (in_channels, out_channels) -> inner width


def stage_specs(macro: MacroConfig, inner_rule: InnerRule) -> list[list[BlockSpec]]:
    """Per-stage block shapes: the first block of a stage carries the stride and the channel change."""
    stages, in_ch = [], macro.stem_channels
    for depth, out_ch, stride in zip(macro.depths, macro.channels, macro.stage_strides()):
        blocks = []
        for i in range(depth):
            blocks.append(BlockSpec(in_ch, out_ch, stride if i == 0 else 1, inner_rule(in_ch, out_ch)))
            in_ch = out_ch
        stages.append(blocks)
    return stages


class BlockNet(nn.Module):
    """stem → stages of ``Block`` → final activation → global average pool → linear classifier."""

    def __init__(self, macro: MacroConfig, block: BlockConfig, specs: Sequence[Sequence[BlockSpec]],
                 num_classes: int = 1000, final_act: nn.Module | None = None):
        super().__init__()
        self.macro, self.block_config, self.num_classes = macro, block, num_classes
        self.stem = STEMS[macro.stem](macro.stem_channels)
        self.stages = nn.Sequential(*(
            nn.Sequential(*(Block(s.in_channels, s.out_channels, s.stride, s.inner, block) for s in stage))
            for stage in specs
        ))
        self.num_features = specs[-1][-1].out_channels
        self.final_act = final_act if final_act is not None else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.num_features, num_classes)
        self._init_weights(NONLINEARITIES[block.nonlinearity].init_nonlinearity)

    def _init_weights(self, nonlinearity: str) -> None:
        """Kaiming normal (fan_out) convs; zero-init each block's last BN so blocks start as identity maps."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity=nonlinearity)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, Block):
                nn.init.zeros_(m.conv3[1].weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_act(self.stages(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x).flatten(1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()


def resolve_macro(macro: str | MacroConfig) -> MacroConfig:
    if isinstance(macro, MacroConfig):
        return macro
    if macro not in MACROS:
        raise ValueError(f"unknown macro {macro!r}: choose one of {', '.join(MACROS)}")
    return MACROS[macro]


def build_model(block: BlockConfig | str, macro: str | MacroConfig = "cifar", num_classes: int = 10) -> BlockNet:
    """The one way to turn a sampled block config into a trainable network."""
    block = BlockConfig.parse(block) if isinstance(block, str) else block
    macro = resolve_macro(macro)
    return BlockNet(macro, block, stage_specs(macro, lambda _in, out: block.inner_channels(out)), num_classes)


def qlnet_inner(in_channels: int, _out: int) -> int:
    """QLNet's width rule: inner = 4 × inplanes while inplanes ≤ 256, else 2 × inplanes."""
    return in_channels * (4 if in_channels <= 256 else 2)


def build_qlnet(depths: tuple[int, ...] = (3, 4, 6, 3), num_classes: int = 1000) -> BlockNet:
    """QLNet (arXiv 2308.01621): multiply + depthwise blocks, expansion 1, hardball before pooling."""
    macro = MacroConfig(f"qlnet-{'-'.join(map(str, depths))}", "imagenet", 64, depths, (64, 128, 256, 512), (3, 224, 224),
                        "QLNet skeleton")
    block = BlockConfig("multiply", "dwconv", 4.0)
    return BlockNet(macro, block, stage_specs(macro, qlnet_inner), num_classes, final_act=Hardball(512))
