"""Block library: layers, the configurable block, macro networks and timm registrations."""

from ablate.models import timm_models  # noqa: F401  (registers the reference models with timm)
from ablate.models.baselines import (
                                     BASELINE_BY_TIMM_NAME,
                                     BASELINE_IDS,
                                     BASELINE_LIST,
                                     BASELINE_NAMES,
                                     BASELINES,
                                     REFERENCE_BASELINE,
                                     Baseline,
)
from ablate.models.blocks import NONLINEARITIES, Block, BlockConfig
from ablate.models.layers import SPATIAL_OPS, Hardball, Softball, SplitMultiply, Twist, hardball, softball
from ablate.models.networks import MACROS, QLNET_MACRO, BlockNet, MacroConfig, build_model

__all__ = [
    "BASELINES", "BASELINE_BY_TIMM_NAME", "BASELINE_IDS", "BASELINE_LIST", "BASELINE_NAMES", "Baseline", "MACROS",
    "REFERENCE_BASELINE", "NONLINEARITIES", "SPATIAL_OPS", "Block", "BlockConfig", "BlockNet", "Hardball",
    "MacroConfig", "QLNET_MACRO", "Softball", "SplitMultiply", "Twist", "build_model", "hardball", "softball",
]
