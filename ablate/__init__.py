"""ablate: an architecture-search / ablation benchmark suite for ConvNet building blocks.

Importing the package registers the reference models (``resnet50_max``, ``resnet50_hybrid``, ``qlnet``,
``qlnet22``, ``qlnet26``) with timm. :func:`register_spatial` and :func:`register_nonlinearity` add your own block
parts to the search (see ``ablate.plugins`` and ``examples/plugins/``).
"""

from ablate.errors import UsageError
from ablate.models import BASELINES, BlockConfig, build_model
from ablate.plugins import register_nonlinearity, register_spatial

__version__ = "0.1.0"

__all__ = ["BASELINES", "BlockConfig", "UsageError", "build_model", "register_nonlinearity", "register_spatial",
           "__version__"]
