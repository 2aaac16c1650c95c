"""Reference models registered with timm, so ``timm.create_model('resnet50_hybrid')`` works after ``import ablate``.

ResNet50 itself is timm's own ``resnet50``; R50-max and R50-hybrid are the PfLayer definitions on the same
skeleton; ``qlnet*`` are the QLNet family. No pretrained weights are published through this package.
"""

from __future__ import annotations

from typing import Any

from timm.models import register_model
from timm.models._registry import generate_default_cfgs

from ablate.models.networks import BlockNet, build_model, build_qlnet


def _cfg(**overrides: Any) -> dict[str, Any]:
    return {"num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7), "crop_pct": 0.875,
            "interpolation": "bilinear", "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
            "first_conv": "stem.0", "classifier": "fc", **overrides}


default_cfgs = generate_default_cfgs({
    "resnet50_max": _cfg(), "resnet50_hybrid": _cfg(), "qlnet": _cfg(), "qlnet22": _cfg(), "qlnet26": _cfg(),
})

_FACTORY_ONLY_KWARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def _finish(model: BlockNet, pretrained: bool, kwargs: dict[str, Any]) -> BlockNet:
    if pretrained:
        raise ValueError("ablate's reference models have no published weights: use pretrained=False")
    unknown = set(kwargs) - set(_FACTORY_ONLY_KWARGS)
    if unknown:
        raise TypeError(f"unsupported model arguments: {', '.join(sorted(unknown))}")
    return model


def _num_classes(kwargs: dict[str, Any]) -> int:
    return kwargs.pop("num_classes", 1000)


@register_model
def resnet50_max(pretrained: bool = False, **kwargs: Any) -> BlockNet:
    """R50-max (PfLayer): every bottleneck 3×3 conv replaced by a 3×3 max-pool, nothing after it."""
    return _finish(build_model("relu-maxpool-w0.25", "resnet50", _num_classes(kwargs)), pretrained, kwargs)


@register_model
def resnet50_hybrid(pretrained: bool = False, **kwargs: Any) -> BlockNet:
    """R50-hybrid (PfLayer): max-pool in stride-1 blocks; avg-pool 2×2 + 3×3 ConvBNReLU in stride-2 blocks."""
    return _finish(build_model("relu-hybrid-w0.25", "resnet50", _num_classes(kwargs)), pretrained, kwargs)


@register_model
def qlnet(pretrained: bool = False, **kwargs: Any) -> BlockNet:
    """QLNet-10M: stages [3, 4, 6, 3], channels 64–512, multiply + depthwise blocks (≈10.06 M params)."""
    return _finish(build_qlnet((3, 4, 6, 3), _num_classes(kwargs)), pretrained, kwargs)


@register_model
def qlnet22(pretrained: bool = False, **kwargs: Any) -> BlockNet:
    return _finish(build_qlnet((3, 4, 12, 3), _num_classes(kwargs)), pretrained, kwargs)


@register_model
def qlnet26(pretrained: bool = False, **kwargs: Any) -> BlockNet:
    return _finish(build_qlnet((3, 8, 12, 3), _num_classes(kwargs)), pretrained, kwargs)
