"""ablate: an architecture-search / ablation benchmark suite for ConvNet building blocks.

Importing the package registers the reference models (``resnet50_max``, ``resnet50_hybrid``, ``qlnet``,
``qlnet22``, ``qlnet26``) with timm: ``import ablate, timm; timm.create_model("qlnet")``. :func:`register_spatial`
and :func:`register_nonlinearity` add your own block parts to the search (see ``ablate.plugins`` and
``examples/plugins/``).

Nothing here imports torch until it is needed: the names below load their modules on first use, and the models
are registered with timm as soon as timm is imported (at once if it already is), so that the command line's
``--help``, ``status``, ``report`` and ``compare`` start without torch.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any

from ablate.core.errors import UsageError

__version__ = "0.1.0"

_LAZY = {"BASELINES": "ablate.models", "BlockConfig": "ablate.models", "build_model": "ablate.models",
         "register_nonlinearity": "ablate.plugins", "register_spatial": "ablate.plugins"}

__all__ = ["BASELINES", "BlockConfig", "UsageError", "build_model", "register_nonlinearity", "register_spatial",
           "__version__"]


def __getattr__(name: str) -> Any:
    """The public names that need torch, imported on first use (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'ablate' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def _register_models() -> None:
    """Register the models with timm (importing ``ablate.models`` does; one that is importing already will)."""
    if "ablate.models" not in sys.modules:
        importlib.import_module("ablate.models")


class _AfterTimm(importlib.abc.MetaPathFinder):
    """Runs :func:`_register_models` right after timm's own import, whoever imports timm (a post-import hook)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "timm":
            return None
        sys.meta_path.remove(self)  # once; the other finders find timm itself
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_register(module) -> None:
            exec_module(module)
            _register_models()

        spec.loader.exec_module = exec_and_register
        return spec


if "timm" in sys.modules:
    _register_models()
elif not any(isinstance(finder, _AfterTimm) for finder in sys.meta_path):
    sys.meta_path.insert(0, _AfterTimm())
