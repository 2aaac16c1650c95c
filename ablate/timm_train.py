"""Run timm's own ``train.py`` (or any script) with ablate's models registered.

    python -m ablate.timm_train PATH/TO/pytorch-image-models/train.py --model qlnet [train.py arguments…]
    python -m ablate.timm_train --plugin my_blocks.py PATH/TO/train.py --model resnet50_max \
        --model-kwargs block=glu-shift-w1

timm ships ``train.py`` in its repository, not in the wheel; this imports ``ablate`` (which registers
``resnet50_max``, ``resnet50_hybrid``, ``qlnet``, ``qlnet22`` and ``qlnet26`` with timm) and then runs the script
unchanged, as ``python train.py …`` would: same ``sys.argv``, ``__name__ == "__main__"``, the script's folder first
on ``sys.path``. ``--plugin MODULE_OR_PATH`` (repeatable, before the script) imports a plugin first, so that a
block made of its parts builds (``block=`` through train.py's ``--model-kwargs``).
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Sequence

USAGE = "usage: python -m ablate.timm_train [--plugin MODULE_OR_PATH …] PATH/TO/timm/train.py [train.py arguments…]"


def run_script(script: str | Path, args: Sequence[str] = (), plugins: Sequence[str] = ()) -> None:
    """Run ``script`` as ``__main__`` with ``args`` as its command line, ablate's models registered.

    Args:
        script: path of the script (timm's ``train.py`` from a checkout of its repository).
        args: the script's own arguments.
        plugins: plugins to import first (module names or ``.py`` paths, see :func:`ablate.load_plugin`).

    Raises:
        FileNotFoundError: ``script`` is not a file.
        PluginError: a plugin cannot be imported or a part it registers is broken.
        SystemExit: whatever the script raises (its exit status).
    """
    path = Path(script)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file: pass the path of train.py in a checkout of "
                                f"https://github.com/huggingface/pytorch-image-models")
    from ablate.plugins import load_plugins  # importing ablate registers the models with timm

    load_plugins(plugins)

    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(path.resolve().parent))
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path


def _leading_plugins(argv: list[str]) -> tuple[list[str], list[str]]:
    """The ``--plugin X`` / ``--plugin=X`` options before the script, and the rest (the script and its arguments)."""
    plugins = []
    while argv and argv[0].startswith("--plugin"):
        option, has_value, value = argv[0].partition("=")
        if option != "--plugin":
            break
        if not has_value:
            if len(argv) < 2:
                raise ValueError("--plugin needs a module name or a .py path")
            value, argv = argv[1], argv[1:]
        plugins.append(value)
        argv = argv[1:]
    return plugins, argv


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``--plugin`` options, the script's path, then its arguments; a missing script or a broken
    plugin is a one-line error (exit 2)."""
    from ablate.core.errors import UsageError

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        plugins, argv = _leading_plugins(argv)
        if not argv or argv[0] in ("-h", "--help"):
            print(USAGE, file=sys.stderr if not argv else sys.stdout)
            return 2 if not argv else 0
        run_script(argv[0], argv[1:], plugins)
    except (FileNotFoundError, UsageError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
