"""Reference models registered with timm, so ``timm.create_model('resnet50_hybrid')`` works after ``import ablate``.

ResNet50 itself is timm's own ``resnet50``; R50-max and R50-hybrid are the PfLayer definitions on the same
skeleton; ``qlnet*`` are the QLNet family. Each is a ``BlockNet`` built through timm's ``build_model_with_cfg``
(as timm's ``resnet.py`` builds ``ResNet``), so ``pretrained_cfg`` and every keyword timm's ``train.py`` passes
(``in_chans``, ``drop_rate``, ``drop_path_rate``, ``global_pool``) work, and so does ``features_only=True`` with
``out_indices`` and any ``feature_cls``: ``"list"`` (default), ``"dict"``, ``"hook"``, ``"fx"``, or ``"getter"``
(through ``BlockNet.forward_intermediates``, pruning what follows the last feature asked for). ``block=``,
``macro=``, ``depths=`` and ``channels=`` replace the variant's own; by default every feature is returned (the
stem's, then one per stage).
No pretrained weights are published through this package.
"""

from __future__ import annotations

from typing import Any

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import register_notrace_module
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from ablate.models.layers import Twist
from ablate.models.networks import QLNET_BLOCK, QLNET_MACRO, BlockNet, resolve_macro

# The twist conv reads its feature map's height and width to pick its coordinate grids, which fx cannot trace
# through: timm's fx feature extractor (``feature_cls="fx"``) keeps it whole, as a leaf.
register_notrace_module(Twist)


def _create_blocknet(variant: str, pretrained: bool = False, **kwargs: Any) -> BlockNet:
    """Build a registered ``BlockNet`` variant with timm's builder (pretrained cfg, feature extraction).

    With ``features_only=True`` the default ``out_indices`` are all the network's features (stem + one per stage),
    not timm's fixed five, so macros with fewer stages work too.

    Raises:
        ValueError: ``pretrained=True`` (no weights are published for these models).
    """
    if pretrained:
        raise ValueError(f"{variant} has no published weights: create it with pretrained=False and train it")
    stages = len(resolve_macro(kwargs["macro"], kwargs.get("depths"), kwargs.get("channels")).depths)
    feature_cfg = dict(flatten_sequential=True, out_indices=tuple(range(stages + 1)))
    return build_model_with_cfg(BlockNet, variant, pretrained, feature_cfg=feature_cfg, **kwargs)


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {"url": "", "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7), "crop_pct": 0.875,
            "interpolation": "bilinear", "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
            "first_conv": "stem.0", "classifier": "fc", **kwargs}


_PFLAYER = dict(origin_url="https://github.com/naver-ai/PfLayer", paper_name="PfLayer (ICLR 2022)")
_QLNET = dict(origin_url="https://huggingface.co/liuyao/QLNet", paper_ids="arXiv:2308.01621")

default_cfgs = generate_default_cfgs({
    "resnet50_max": _cfg(**_PFLAYER), "resnet50_hybrid": _cfg(**_PFLAYER),
    "qlnet": _cfg(**_QLNET), "qlnet22": _cfg(**_QLNET), "qlnet26": _cfg(**_QLNET),
})


@register_model
def resnet50_max(pretrained: bool = False, **kwargs: Any) -> BlockNet:
    """R50-max (PfLayer): every bottleneck 3×3 conv replaced by a 3×3 max-pool, nothing after it."""
    model_args = dict(block="relu-maxpool-w0.25", macro="resnet50")
    return _create_blocknet("resnet50_max", pretrained, **dict(model_args, **kwargs))


@register_model
def resnet50_hybrid(pretrained: bool = False, **kwargs: Any) -> BlockNet:
    """R50-hybrid (PfLayer): max-pool in stride-1 blocks; avg-pool 2×2 + 3×3 ConvBNReLU in stride-2 blocks."""
    model_args = dict(block="relu-hybrid-w0.25", macro="resnet50")
    return _create_blocknet("resnet50_hybrid", pretrained, **dict(model_args, **kwargs))


@register_model
def qlnet(pretrained: bool = False, **kwargs: Any) -> BlockNet:
    """QLNet-10M: stages [3, 4, 6, 3], channels 64–512, multiply + depthwise blocks (≈10.06 M params)."""
    model_args = dict(block=QLNET_BLOCK, macro=QLNET_MACRO, depths=(3, 4, 6, 3))
    return _create_blocknet("qlnet", pretrained, **dict(model_args, **kwargs))


@register_model
def qlnet22(pretrained: bool = False, **kwargs: Any) -> BlockNet:
    """QLNet-22: stages [3, 4, 12, 3]."""
    model_args = dict(block=QLNET_BLOCK, macro=QLNET_MACRO, depths=(3, 4, 12, 3))
    return _create_blocknet("qlnet22", pretrained, **dict(model_args, **kwargs))


@register_model
def qlnet26(pretrained: bool = False, **kwargs: Any) -> BlockNet:
    """QLNet-26: stages [3, 8, 12, 3]."""
    model_args = dict(block=QLNET_BLOCK, macro=QLNET_MACRO, depths=(3, 8, 12, 3))
    return _create_blocknet("qlnet26", pretrained, **dict(model_args, **kwargs))
