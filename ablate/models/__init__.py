"""Block library: layers, the configurable block, macro networks and timm registrations."""

from ablate.models import timm_models  # noqa: F401  (registers the reference models with timm)
from ablate.models.blocks import NONLINEARITIES, Block, BlockConfig
from ablate.models.layers import SPATIAL_OPS, Hardball, Softball, SplitMultiply, Twist, hardball, softball
from ablate.models.networks import MACROS, QLNET_MACRO, BlockNet, MacroConfig, build_model, build_qlnet

BASELINES: dict[str, BlockConfig] = {
    "ResNet50": BlockConfig("relu", "conv3x3", 0.25),
    "R50-max": BlockConfig("relu", "maxpool", 0.25),
    "R50-hybrid": BlockConfig("relu", "hybrid", 0.25),
}
BASELINE_IDS: dict[str, str] = {"resnet50": "ResNet50", "resnet50_max": "R50-max", "resnet50_hybrid": "R50-hybrid"}

__all__ = [
    "BASELINES", "BASELINE_IDS", "MACROS", "NONLINEARITIES", "SPATIAL_OPS", "Block", "BlockConfig", "BlockNet", "Hardball",
    "MacroConfig", "QLNET_MACRO", "Softball", "SplitMultiply", "Twist", "build_model", "build_qlnet", "hardball", "softball",
]
