"""A package's public names, imported on first use (PEP 562), so that importing one light module of the package does
not import what its siblings need.

A Ray worker imports ``ablate.analysis.selection`` (one sort key) and ``ablate.planning.timing`` (a few optimizer
steps); with eager package ``__init__`` files each of those also imported scipy and statsmodels (1.4 s and ~100 MB
per worker process, for statistics only the driver computes).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` for names that live in its submodules.

    Args:
        package: The package's ``__name__``.
        exports: Each public name and the submodule (relative to the package) that defines it.

    Returns:
        ``(__getattr__, __dir__)`` for the package's module namespace: ``from package import name`` imports the
        submodule that defines ``name`` the first time it is asked for.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
