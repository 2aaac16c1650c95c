"""ablate: an architecture-search / ablation benchmark suite for ConvNet building blocks.

Importing the package registers the reference models (``resnet50_max``, ``resnet50_hybrid``, ``qlnet``,
``qlnet22``, ``qlnet26``) with timm.
"""

from ablate.errors import UsageError
from ablate.models import BASELINES, BlockConfig, build_model

__version__ = "0.1.0"

__all__ = ["BASELINES", "BlockConfig", "UsageError", "build_model", "__version__"]
