"""Run timm's own ``train.py`` (or any script) with ablate's models registered.

    python -m ablate.timm_train PATH/TO/pytorch-image-models/train.py --model qlnet [train.py arguments…]

timm ships ``train.py`` in its repository, not in the wheel; this imports ``ablate`` (which registers
``resnet50_max``, ``resnet50_hybrid``, ``qlnet``, ``qlnet22`` and ``qlnet26`` with timm) and then runs the script
unchanged, as ``python train.py …`` would: same ``sys.argv``, ``__name__ == "__main__"``, the script's folder first
on ``sys.path``.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Sequence

USAGE = "usage: python -m ablate.timm_train PATH/TO/timm/train.py [train.py arguments…]"


def run_script(script: str | Path, args: Sequence[str] = ()) -> None:
    """Run ``script`` as ``__main__`` with ``args`` as its command line, ablate's models registered.

    Args:
        script: path of the script (timm's ``train.py`` from a checkout of its repository).
        args: the script's own arguments.

    Raises:
        FileNotFoundError: ``script`` is not a file.
        SystemExit: whatever the script raises (its exit status).
    """
    path = Path(script)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file: pass the path of train.py in a checkout of "
                                f"https://github.com/huggingface/pytorch-image-models")
    import ablate  # noqa: F401  (registers the models with timm)

    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(path.resolve().parent))
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: the script's path, then its arguments; a missing script is a one-line error (exit 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    try:
        run_script(argv[0], argv[1:])
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
