"""The reference models every run compares against: one definition of their names and blocks.

Each baseline is the same macro network as the candidates with a ResNet-family block: ResNet50's bottleneck, and
PfLayer's two replacements of its dense 3×3 conv. ``timm_name`` is the name timm knows the ImageNet model by.
"""

from __future__ import annotations

from dataclasses import dataclass

from ablate.core.schema import BASELINE_NAMES, REFERENCE_BASELINE
from ablate.models.blocks import BlockConfig


@dataclass(frozen=True)
class Baseline:
    """A reference model: its display name, its timm model name, and its block."""

    name: str
    timm_name: str
    block: BlockConfig


_RESNET50, _R50_MAX, _R50_HYBRID = BASELINE_NAMES  # the tables' names (ablate.core.schema, light to import)
BASELINE_LIST: tuple[Baseline, ...] = (
    Baseline(_RESNET50, "resnet50", BlockConfig("relu", "conv3x3", 0.25)),
    Baseline(_R50_MAX, "resnet50_max", BlockConfig("relu", "maxpool", 0.25)),
    Baseline(_R50_HYBRID, "resnet50_hybrid", BlockConfig("relu", "hybrid", 0.25)),
)
assert REFERENCE_BASELINE in BASELINE_NAMES  # what Δtop-1 is measured against
BASELINE_BY_TIMM_NAME: dict[str, Baseline] = {b.timm_name: b for b in BASELINE_LIST}
BASELINES: dict[str, BlockConfig] = {b.name: b.block for b in BASELINE_LIST}  # display name → block
BASELINE_IDS: dict[str, str] = {b.timm_name: b.name for b in BASELINE_LIST}  # timm name → display name
