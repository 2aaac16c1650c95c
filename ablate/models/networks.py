"""Macro networks: a stem, stages of blocks and a pooled linear head, shared by every candidate and baseline.

``BlockNet`` is built the timm way — every option is a constructor keyword (block config, macro or
depths/channels, ``num_classes``, ``in_chans``, ``global_pool``, ``drop_rate``, ``drop_path_rate``) — and has
timm ResNet's interface (``feature_info``, ``forward_features`` / ``forward_head``, ``forward_intermediates`` /
``prune_intermediate_layers``, ``get_classifier`` / ``reset_classifier``), so ``timm.create_model`` (see
``ablate.models.timm_models``), its ``features_only`` wrappers and timm's ``train.py`` can build and train it.
Every network has the same attributes (``stem``, ``stages``, ``final_act``, ``fc``) so that the cost counter and
the symmetry check can walk any of them the same way.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from timm.layers import create_classifier
from timm.models import checkpoint_seq
from timm.models._features import feature_take_indices
from torch import nn

from ablate.core.registry import lookup
from ablate.models.blocks import NONLINEARITIES, Block, BlockConfig
from ablate.models.layers import Hardball


def imagenet_stem(in_chans: int, channels: int) -> nn.Sequential:
    """ResNet's 7×7/2 conv + BN + ReLU + 3×3/2 max-pool (224² → 56²)."""
    return nn.Sequential(
        nn.Conv2d(in_chans, channels, 7, 2, 3, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    )


def cifar_stem(in_chans: int, channels: int) -> nn.Sequential:
    """3×3 stride-1 conv + BN + ReLU: keeps 32² inputs at full resolution for the first stage."""
    return nn.Sequential(nn.Conv2d(in_chans, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels),
                         nn.ReLU(inplace=True))


@dataclass(frozen=True)
class Stem:
    """How to build a stem, and its output stride (for ``feature_info``); its activation is ``stem[act_index]``."""

    build: Callable[[int, int], nn.Sequential]  # (in_chans, channels) -> module
    act_reduction: int  # reduction at the stem's activation
    reduction: int  # reduction at the stem's output
    act_index: int = 2  # position of the activation (feature 0) in the stem's Sequential


STEMS: dict[str, Stem] = {"imagenet": Stem(imagenet_stem, 2, 4), "cifar": Stem(cifar_stem, 1, 1)}

InnerRule = Callable[[BlockConfig, int, int], int]  # (block, in_channels, out_channels) -> inner width


def qlnet_inner(in_channels: int, _out: int) -> int:
    """QLNet's width rule: inner = 4 × inplanes while inplanes ≤ 256, else 2 × inplanes."""
    return in_channels * (4 if in_channels <= 256 else 2)


INNER_RULES: dict[str, InnerRule] = {
    "width": lambda block, _in, out: block.inner_channels(out),  # the block config's width × out channels
    "qlnet": lambda _block, in_ch, out: qlnet_inner(in_ch, out),
}

FINAL_ACTS: dict[str, Callable[[int], nn.Module]] = {
    "identity": lambda _channels: nn.Identity(),
    "hardball": Hardball,  # radius2 = channels of the last feature map (QLNet: 512)
}


@dataclass(frozen=True)
class MacroConfig:
    """A network skeleton: stem kind and width, blocks per stage, block output channels per stage.

    ``inner_rule`` (``INNER_RULES``) gives each block's inner width; ``final_act`` (``FINAL_ACTS``) acts on the
    last feature map before pooling.
    """

    name: str
    stem: str
    stem_channels: int
    depths: tuple[int, ...]
    channels: tuple[int, ...]
    input_size: tuple[int, int, int]
    description: str = ""
    inner_rule: str = "width"
    final_act: str = "identity"

    def __post_init__(self) -> None:
        for key, registry in (("stem", STEMS), ("inner_rule", INNER_RULES), ("final_act", FINAL_ACTS)):
            lookup(registry, getattr(self, key), f"{key} of macro {self.name!r}")
        if len(self.depths) != len(self.channels) or not self.depths or min(self.depths) < 1:
            raise ValueError(f"macro {self.name!r}: depths and channels need one positive entry per stage, "
                             f"got {self.depths} and {self.channels}")

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

QLNET_MACRO = MacroConfig("qlnet", "imagenet", 64, (3, 4, 6, 3), (64, 128, 256, 512), (3, 224, 224),
                          "QLNet skeleton (expansion 1, hardball before pooling)", inner_rule="qlnet",
                          final_act="hardball")
QLNET_BLOCK = BlockConfig("multiply", "dwconv", 4.0)  # the width is QLNet's rule (4, then 2), not this number


@dataclass(frozen=True)
class BlockSpec:
    in_channels: int
    out_channels: int
    stride: int
    inner: int


def stage_specs(macro: MacroConfig, block: BlockConfig) -> list[list[BlockSpec]]:
    """Per-stage block shapes: the first block of a stage carries the stride and the channel change."""
    rule = INNER_RULES[macro.inner_rule]
    stages, in_ch = [], macro.stem_channels
    for depth, out_ch, stride in zip(macro.depths, macro.channels, macro.stage_strides()):
        blocks = []
        for i in range(depth):
            blocks.append(BlockSpec(in_ch, out_ch, stride if i == 0 else 1, rule(block, in_ch, out_ch)))
            in_ch = out_ch
        stages.append(blocks)
    return stages


def resolve_macro(macro: str | MacroConfig, depths: Sequence[int] | None = None,
                  channels: Sequence[int] | None = None) -> MacroConfig:
    """A macro by name (``MACROS``) or as given, with ``depths`` / ``channels`` replaced when passed.

    Raises:
        ValueError: unknown macro name, or depths / channels that do not match.
    """
    if not isinstance(macro, MacroConfig):
        macro = lookup(MACROS, macro, "macro")
    overrides: dict[str, Any] = {}
    if depths is not None:
        overrides["depths"] = tuple(int(d) for d in depths)
    if channels is not None:
        overrides["channels"] = tuple(int(c) for c in channels)
    if overrides:
        name = f"{macro.name}-{'-'.join(map(str, overrides.get('depths', macro.depths)))}"
        macro = dataclasses.replace(macro, name=name, **overrides)
    return macro


class BlockNet(nn.Module):
    """stem → stages of ``Block`` → final activation → global pool → (dropout) → linear classifier.

    Args:
        block: the block config (or its string, e.g. ``relu-maxpool-w0.25``) every block is built from.
        macro: a ``MACROS`` name or a ``MacroConfig``: stem, depths, channels, inner-width rule, final activation.
        depths: blocks per stage, replacing the macro's.
        channels: block output channels per stage, replacing the macro's.
        num_classes: classifier outputs; 0 removes the classifier (``forward`` gives pooled features).
        in_chans: input image channels.
        global_pool: timm pool type (``avg``, ``max``, ``avgmax``, ``catavgmax``, or ``''`` for none).
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth on the residual branch, rising linearly from 0 over the blocks.
        zero_init_last: zero-init each block's last BN so that every block starts as its skip.
    """

    def __init__(self, block: BlockConfig | str = "relu-conv3x3-w0.25", macro: str | MacroConfig = "resnet50", *,
                 depths: Sequence[int] | None = None, channels: Sequence[int] | None = None,
                 num_classes: int = 1000, in_chans: int = 3, global_pool: str = "avg", drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, zero_init_last: bool = True):
        super().__init__()
        block = BlockConfig.coerce(block)
        macro = resolve_macro(macro, depths, channels)
        self.macro, self.block_config = macro, block
        self.num_classes, self.in_chans, self.drop_rate = num_classes, in_chans, drop_rate
        self.grad_checkpointing = False
        stem = STEMS[macro.stem]
        specs = stage_specs(macro, block)
        self.stem = stem.build(in_chans, macro.stem_channels)
        self.stem_act_index = stem.act_index
        self.feature_info = [dict(num_chs=macro.stem_channels, reduction=stem.act_reduction,
                                  module=f"stem.{stem.act_index}")]
        total, index, reduction, stages = sum(map(len, specs)), 0, stem.reduction, []
        for s, stage in enumerate(specs):
            blocks = []
            for spec in stage:
                rate = drop_path_rate * index / max(1, total - 1)
                blocks.append(Block(spec.in_channels, spec.out_channels, spec.stride, spec.inner, block,
                                    drop_path=rate))
                index += 1
            reduction *= stage[0].stride
            self.feature_info.append(dict(num_chs=stage[-1].out_channels, reduction=reduction, module=f"stages.{s}"))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.num_features = specs[-1][-1].out_channels
        self.final_act = FINAL_ACTS[macro.final_act](self.num_features)
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool)
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        self.init_weights(NONLINEARITIES[block.nonlinearity].init_nonlinearity, zero_init_last)

    @torch.no_grad()
    def init_weights(self, nonlinearity: str = "relu", zero_init_last: bool = True) -> None:
        """Kaiming normal (fan_out) convs; BN to identity; each block's ``zero_init_last`` if asked."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity=nonlinearity)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, Block):
                    m.zero_init_last()

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, str]:
        """Parameter groups for timm's layer-wise lr decay: the stem, then stages (coarse) or blocks."""
        return dict(stem=r"^stem", blocks=r"^stages\.(\d+)" if coarse else r"^stages\.(\d+)\.(\d+)")

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in the backward pass (timm's ``--grad-checkpointing``)."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self, name_only: bool = False) -> nn.Module | str:
        """The classifier module (or its attribute name)."""
        return "fc" if name_only else self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new classifier for ``num_classes`` (0: none); ``global_pool`` changes the pooling, None keeps it."""
        self.num_classes = num_classes
        pool_type = self.global_pool.pool_type if global_pool is None else global_pool
        device = self.stem[0].weight.device
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=pool_type)
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        self.global_pool.to(device).train(self.training)
        self.fc.to(device).train(self.training)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (unpooled), after the macro's final activation."""
        x = self.stem(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.stages, x, flatten=True)
        else:
            x = self.stages(x)
        return self.final_act(x)

    def forward_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False
                              ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The forward pass that also returns feature maps along the way (timm's feature API).

        Feature 0 is the stem's activation (before the ImageNet stem's max-pool), feature ``s + 1`` the output of
        stage ``s``, as ``feature_info`` lists them. ``BlockNet`` has no final norm layer; its final activation
        (``final_act``: QLNet's hardball, identity for the other macros) sits where timm's ConvNeXt has its
        pre-head norm and is treated the same way: ``norm=True`` applies it to the last stage's feature map, and
        it is always applied to the returned final features, so these equal ``forward_features(x)``.

        Args:
            x: input images, NCHW.
            indices: features to return: None for all, an int ``n`` for the last ``n``, or a sequence of indices
                (negative ones count from the end).
            norm: apply the final activation to the last stage's feature map (a no-op where it is identity).
            stop_early: run no stage after the last one asked for; the final features returned are then that
                stage's output, without the final activation.
            output_fmt: only ``"NCHW"``.
            intermediates_only: return only the list of feature maps.

        Returns:
            ``(final features, feature maps)``, or only the feature maps if ``intermediates_only``.

        Raises:
            ValueError: an ``output_fmt`` other than NCHW.
            AssertionError: an index out of range (from timm's ``feature_take_indices``).
        """
        if output_fmt != "NCHW":
            raise ValueError(f"BlockNet gives NCHW feature maps only, not {output_fmt!r}")
        take_indices, max_index = feature_take_indices(len(self.stages) + 1, indices)
        intermediates = []
        for i, layer in enumerate(self.stem):
            x = layer(x)
            if i == self.stem_act_index and 0 in take_indices:
                intermediates.append(x)
        stages = self.stages[:max_index] if stop_early else self.stages
        for s, stage in enumerate(stages):
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint_seq(stage, x)
            else:
                x = stage(x)
            if s + 1 in take_indices:
                intermediates.append(self.final_act(x) if norm and s + 1 == len(self.stages) else x)
        if intermediates_only:
            return intermediates
        if len(stages) == len(self.stages):
            x = self.final_act(x)
        return x, intermediates

    def prune_intermediate_layers(self, indices: int | Sequence[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop every layer after the last feature in ``indices`` (timm's ``features_only`` getter calls this).

        Stages after it go (and the stem's max-pool if only feature 0 is kept). When stages go, the final
        activation and the head go too, as they are sized for the last stage, and ``num_features`` becomes the
        last kept feature's channels.

        Args:
            indices: the features to keep, as in ``forward_intermediates``.
            prune_norm: also drop the final activation (hardball) when the last stage is kept.
            prune_head: drop the classifier and pooling (``reset_classifier(0, "")``).

        Returns:
            The kept feature indices, absolute (negative ones resolved against the unpruned network).
        """
        take_indices, max_index = feature_take_indices(len(self.stages) + 1, indices)
        prune_end = max_index < len(self.stages)
        self.stages = self.stages[:max_index]
        if max_index == 0:
            self.stem = self.stem[:self.stem_act_index + 1]
        if prune_norm or prune_end:
            self.final_act = nn.Identity()
        if prune_end:
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head or prune_end:
            self.reset_classifier(0, "")
        return take_indices

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, dropout and classify; ``pre_logits=True`` stops before the classifier."""
        x = self.global_pool(x)
        if self.drop_rate:
            x = nn.functional.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def build_model(block: BlockConfig | str, macro: str | MacroConfig = "cifar", num_classes: int = 10,
                **kwargs: Any) -> BlockNet:
    """The one way to turn a sampled block config into a trainable network.

    Args:
        block: the block config or its string.
        macro: a ``MACROS`` name or a ``MacroConfig``.
        num_classes: classifier outputs.
        **kwargs: further ``BlockNet`` options (``in_chans``, ``drop_path_rate``, ``global_pool``, …).

    Returns:
        The network, freshly initialized.

    Raises:
        ValueError: an unknown block name or macro.

    Example:
        >>> model = build_model("multiply-twist-w2", macro="cifar", num_classes=10)
        >>> model(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    return BlockNet(block, macro, num_classes=num_classes, **kwargs)

