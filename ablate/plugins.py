"""Your own block parts in the search: register a spatial op or a nonlinearity scheme from a module of yours, and
load the modules a run names (``--plugin MODULE_OR_PATH``, a space file's ``plugins:``) on the driver and on every
Ray worker.

A plugin is a plain Python module (a ``.py`` file or an importable module name) whose import registers its parts::

    import ablate
    from torch import nn

    @ablate.register_spatial("shift", weighted=False)
    def shift(channels: int, stride: int) -> nn.Module:
        return ChannelShift(stride)

The contract of each part is in the docstrings of :func:`register_spatial` and :func:`register_nonlinearity`;
registration builds the part once and runs it on a dummy tensor, so a part of the wrong shape, stride or with a
non-finite output is refused at import, in one line naming it.

The driver imports them before the space is validated; Ray's ``runtime_env`` (``py_modules``) ships each plugin's
source to every node, and each worker imports them before it builds a model (:func:`ensure_plugins`): nothing has to
be installed on the nodes.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from ablate.core.errors import UsageError, error_summary
from ablate.models.blocks import NONLINEARITIES, NonlinearityScheme
from ablate.models.layers import SPATIAL_OPS, SpatialOp

NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # a block's name is NONLINEARITY-SPATIAL-wWIDTH: no hyphens
POSITIONS = ("inner", "after_spatial", "out")
HASH_ATTRIBUTE = "__ablate_source_hash__"  # set on a plugin module when it is first loaded
REGISTRIES = {"spatial op": SPATIAL_OPS, "nonlinearity": NONLINEARITIES}  # what a plugin may add to
_PROBE_CHANNELS, _PROBE_SIDE = 8, 8


class PluginError(UsageError):
    """A plugin's part breaks its contract (one line: the part, what is wrong)."""


def _claim(kind: str, name: str, factory: Callable) -> None:
    """Refuse a name that is malformed, built in, or another module's (before the probe runs); the same module
    registering again (a re-import, a worker's second import) replaces its own entry."""
    if not isinstance(name, str) or not NAME.match(name):
        raise PluginError(f"{kind} name {name!r} must be lower-case letters, digits and _ (it goes into block "
                          "names like relu-NAME-w1)")
    registry, module = REGISTRIES[kind], getattr(factory, "__module__", "?")
    if registry.is_built_in(name):
        raise PluginError(f"{kind} {name!r} is built in; register yours under another name")
    if registry.owner(name) not in (None, module):
        raise PluginError(f"{kind} {name!r} is already registered by {registry.owner(name)}; register yours under "
                          "another name")


def _run_probe(kind: str, name: str, what: str, build: Callable[[], nn.Module], shape: tuple[int, ...],
               expected: tuple[int, ...]) -> None:
    """Build a part and run it on a random tensor of ``shape``; the global RNG is left as it was (a plugin's import
    must not shift the random streams of what the run does next)."""
    with torch.random.fork_rng(devices=[]):
        try:
            module = build()
            if not isinstance(module, nn.Module):
                raise PluginError(f"{kind} {name!r}: its factory returned {type(module).__name__}, not a "
                                  "torch.nn.Module")
            with torch.no_grad():
                y = module(torch.randn(shape))
        except PluginError:
            raise
        except Exception as err:  # whatever the user's code raises, it is one line naming the part
            raise PluginError(f"{kind} {name!r}: {what} raised {error_summary(err)}") from None
    if not isinstance(y, torch.Tensor):
        raise PluginError(f"{kind} {name!r}: {what} returned {type(y).__name__}, not a tensor")
    if tuple(y.shape) != expected:
        raise PluginError(f"{kind} {name!r}: {what} gives shape {tuple(y.shape)}, expected {expected}")
    if not torch.isfinite(y).all():
        raise PluginError(f"{kind} {name!r}: {what} gives a non-finite output")


def register_spatial(name: str, *, weighted: bool = True, description: str | None = None,
                     weights_only_when_strided: bool = False) -> Callable[[Callable[[int, int], nn.Module]], Callable]:
    """Register a block's 3×3 spatial op under ``name``, usable in a space file's ``spatial:`` axis.

    The decorated factory is called as ``factory(channels, stride)`` for each block and returns an ``nn.Module``
    that maps ``(N, channels, H, W)`` to ``(N, channels, ceil(H / stride), ceil(W / stride))``: the op carries the
    block's stride. Channels stay the block's inner width (``width × the block's output channels``).

    Args:
        name: The op's name in block names (``relu-NAME-w1``): lower-case letters, digits and ``_``; not a built-in.
        weighted: Whether the op has weights; then BN and the scheme's ``after_spatial`` activation follow it, as
            they follow a conv. An unweighted op (a pool, a shift) is followed by nothing.
        description: One line for listings; default the factory's docstring's first line.
        weights_only_when_strided: The op is weighted only in stride-2 blocks (as R50-hybrid's).

    Returns:
        The decorator; it returns the factory unchanged.

    Raises:
        PluginError: A malformed or taken name, or the op fails its probe (it is built for 8 channels at stride 1
            and 2 and run on a ``(2, 8, 8, 8)`` tensor: the shape above and a finite output are required).
    """
    def decorate(factory: Callable[[int, int], nn.Module]) -> Callable[[int, int], nn.Module]:
        _claim("spatial op", name, factory)
        c, side = _PROBE_CHANNELS, _PROBE_SIDE
        for stride in (1, 2):
            out = -(-side // stride)
            _run_probe("spatial op", name, f"factory({c}, stride={stride}) on a (2, {c}, {side}, {side}) tensor",
                       lambda: factory(c, stride), (2, c, side, side), (2, c, out, out))
        SPATIAL_OPS.register(name, SpatialOp(factory, weighted, description or _first_line(factory, name),
                                             weights_only_when_strided), factory.__module__)
        return factory
    return decorate


def register_nonlinearity(name: str, *, conv1_factor: int = 1, positions: Sequence[str] = POSITIONS,
                          init: str = "relu", description: str | None = None) -> Callable[[Callable[[int], nn.Module]],
                                                                                       Callable]:
    """Register a nonlinearity scheme under ``name``, usable in a space file's ``nonlinearity:`` axis.

    The block is ``x → conv1 (1×1 ConvBN) → inner → S → [BN, after_spatial] → conv3 (1×1 ConvBN) → + skip → out``.
    The decorated factory is called as ``factory(channels)`` for each position it is named in and returns an
    ``nn.Module``: at ``inner`` it takes conv1's ``conv1_factor × channels`` channels and returns ``channels`` (a
    factor of 2 lets it combine two halves, as QLNet's multiply does); at ``after_spatial`` (only after a weighted
    spatial op, behind its BN) and ``out`` (after the residual add, on the block's output channels) it keeps its
    input's shape. Positions not named get no activation.

    Args:
        name: The scheme's name in block names (``NAME-dwconv-w1``): lower-case letters, digits and ``_``.
        conv1_factor: conv1's output channels as a multiple of the block's inner width (1 or more).
        positions: Where the factory's module sits: any of ``inner``, ``after_spatial``, ``out``.
        init: The Kaiming gain the network's convs are initialised for: ``relu`` or ``linear``.
        description: One line for listings; default the factory's docstring's first line.

    Returns:
        The decorator; it returns the factory unchanged.

    Raises:
        PluginError: A malformed or taken name, a bad option, or the module fails its probe (built for 8 channels
            and run on a dummy ``(2, C, 8, 8)`` tensor at each position: the shapes above and a finite output).
    """
    def decorate(factory: Callable[[int], nn.Module]) -> Callable[[int], nn.Module]:
        _claim("nonlinearity", name, factory)
        unknown = sorted(set(positions) - set(POSITIONS))
        if unknown or not positions:
            raise PluginError(f"nonlinearity {name!r}: positions must be some of {', '.join(POSITIONS)}, "
                              f"got {list(positions)}")
        if not isinstance(conv1_factor, int) or conv1_factor < 1:
            raise PluginError(f"nonlinearity {name!r}: conv1_factor must be a whole number ≥ 1, got {conv1_factor!r}")
        if init not in ("relu", "linear"):
            raise PluginError(f"nonlinearity {name!r}: init must be 'relu' or 'linear', got {init!r}")
        c, side = _PROBE_CHANNELS, _PROBE_SIDE
        for position in positions:
            wide = c * conv1_factor if position == "inner" else c
            _run_probe("nonlinearity", name, f"factory({c}) at {position} on a (2, {wide}, {side}, {side}) tensor",
                       lambda: factory(c), (2, wide, side, side), (2, c, side, side))

        def at(position: str) -> Callable[[int], nn.Module]:
            return factory if position in positions else (lambda channels: nn.Identity())

        out = at("out")
        NONLINEARITIES.register(name, NonlinearityScheme(conv1_factor, at("inner"), at("after_spatial"),
                                                         lambda channels, downsampling: out(channels), init,
                                                         description or _first_line(factory, name)),
                                factory.__module__)
        return factory
    return decorate


def _first_line(factory: Callable, name: str) -> str:
    doc = (factory.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else f"{name} (plugin {factory.__module__})"


@dataclass(frozen=True)
class Plugin:
    """A loaded plugin module.

    Attributes:
        spec: As the run names it: an importable module name, or a ``.py`` file's absolute path.
        module: The name it is imported under (a file's stem for a path).
        source: The file or package folder Ray ships to the workers.
        source_hash: SHA-256 of its source (every ``.py`` file of a package), part of the baseline cache key.
    """

    spec: str
    module: str
    source: str
    source_hash: str

    def as_dict(self) -> dict[str, str]:
        return {"spec": self.spec, "module": self.module, "source_hash": self.source_hash}


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or os.sep in spec or "/" in spec


def _source_hash(source: Path) -> str:
    files = sorted(source.rglob("*.py")) if source.is_dir() else [source]
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(source) if source.is_dir() else file.name).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _import_path(spec: str, path: Path) -> Any:
    module_name = path.stem
    if not NAME.match(module_name.lower()) or not module_name.isidentifier():
        raise UsageError(f"plugin {spec}: the file name must be a Python module name (letters, digits, _)")
    existing = sys.modules.get(module_name)
    if existing is not None:
        if Path(getattr(existing, "__file__", "") or "").resolve() == path:
            return existing
        raise UsageError(f"plugin {spec}: its name {module_name!r} is taken by another module "
                         f"({getattr(existing, '__file__', 'built in')}); rename the file")
    found = importlib.util.find_spec(module_name)
    if found is not None:
        if found.origin and Path(found.origin).resolve() == path:  # the file is on sys.path already
            return importlib.import_module(module_name)
        raise UsageError(f"plugin {spec}: its name {module_name!r} is taken by an importable module "
                         f"({found.origin}); rename the file")
    spec_ = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec_)
    sys.modules[module_name] = module
    try:
        spec_.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def load_plugin(spec: str, base_dir: Path | None = None) -> Plugin:
    """Import one plugin (its registrations run and are probed) and describe it.

    Args:
        spec: An importable module name (``mylab.blocks``) or a ``.py`` file's path.
        base_dir: What a relative path is relative to (a space file's folder); default the working directory.

    Returns:
        The plugin, with what to ship to the workers and its source hash.

    Raises:
        UsageError: No such file or module, the import fails, or a part breaks its contract (one line each).
    """
    spec = str(spec).strip()
    try:
        if _is_path(spec):
            path = ((base_dir or Path.cwd()) / Path(spec).expanduser()).resolve()
            if not path.is_file():
                raise UsageError(f"plugin {spec}: no such file ({path})")
            module, source, spec = _import_path(spec, path), path, str(path)
        else:
            module = importlib.import_module(spec)
            top = importlib.import_module(spec.split(".")[0])
            source = Path(top.__file__).parent if hasattr(top, "__path__") else Path(top.__file__)
    except PluginError as err:  # a part broke its contract as the module registered it
        raise UsageError(f"plugin {spec}: {err}") from None
    except UsageError:
        raise
    except ModuleNotFoundError as err:
        if err.name and spec.startswith(err.name):
            raise UsageError(f"plugin {spec}: no module named {err.name!r} (pass a .py file's path, or a module "
                             "on PYTHONPATH)") from None
        raise UsageError(f"plugin {spec}: cannot import it: {error_summary(err)}") from None
    except Exception as err:  # a plugin's own error at import: SyntaxError, NameError, a failed registration …
        raise UsageError(f"plugin {spec}: cannot import it: {error_summary(err)}") from None
    if not hasattr(module, HASH_ATTRIBUTE):  # the hash of the code imported, not of a file edited since
        setattr(module, HASH_ATTRIBUTE, _source_hash(source))
    return Plugin(spec, module.__name__, str(source), getattr(module, HASH_ATTRIBUTE))


def load_plugins(specs: Iterable[str], base_dir: Path | None = None) -> tuple[Plugin, ...]:
    """:func:`load_plugin` for each spec, in order, each once."""
    plugins: dict[str, Plugin] = {}
    for spec in specs:
        plugin = load_plugin(spec, base_dir)
        plugins.setdefault(plugin.spec, plugin)
    return tuple(plugins.values())


def runtime_env(plugins: Sequence[Plugin]) -> dict[str, Any] | None:
    """Ray's ``runtime_env`` that ships the plugins' sources to every node (``py_modules``: each worker can then
    import them by module name); None without plugins."""
    if not plugins:
        return None
    return {"py_modules": sorted({p.source for p in plugins})}


def ensure_plugins(plugins: Sequence[Plugin]) -> None:
    """Import the plugins in this process (a Ray worker) unless it has them: by module name (shipped by
    :func:`runtime_env`), else from the plugin's file (a local Ray, whose workers may not see the shipped copy when
    Ray was started without it)."""
    for plugin in plugins:
        if plugin.module in sys.modules:
            continue
        try:
            importlib.import_module(plugin.module)
        except ModuleNotFoundError:
            load_plugin(plugin.spec)

