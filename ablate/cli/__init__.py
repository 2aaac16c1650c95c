"""The command line: ``python run_ablation.py [COMMAND] [flags]``, ``python -m ablate …`` or ``ablate …``.

One parser (:mod:`ablate.cli.parser`) with a subcommand per job — ``run`` (the default: ``python run_ablation.py
--space qlblock`` runs an ablation), ``plan``, ``report``, ``status``, ``compare``, ``costs`` — whose handlers
(:mod:`ablate.cli.commands`) import what they need only when they run: ``--help``, ``status``, ``report`` and
``compare`` start without torch. Help and errors name the command as the user typed it.

Bad input ends in one line on stderr and exit code 2, never a traceback; Ctrl-C stops a run with exit code 130 and
the command that resumes it.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Sequence

from ablate.cli.parser import COMMANDS, DEFAULT_COMMAND, build_parser, parse
from ablate.cli.run import INTERRUPTED, settings_from_args
from ablate.core.errors import UsageError

__all__ = ["COMMANDS", "INTERRUPTED", "build_parser", "main", "settings_from_args"]


def typed_prog(argv0: str | None = None) -> str:
    """The command as the user typed it, from ``sys.argv[0]``: ``python run_ablation.py`` (a script), ``python -m
    ablate`` (this package's ``__main__.py``) or ``ablate`` (the console script); ``python run_ablation.py`` when
    another program calls :func:`main` (a test runner, a notebook)."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the ablate package
    if os.path.basename(argv0) == "__main__.py" and os.path.dirname(os.path.abspath(argv0)) == here:
        return "python -m ablate"
    if argv0.endswith(".py") and os.path.basename(argv0) != "__main__.py":
        return f"python {argv0}"
    return "ablate" if os.path.basename(argv0) == "ablate" else "python run_ablation.py"


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run the command line.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``); a first argument that is an option, or none, means ``run``.
        prog: The command as typed (default: :func:`typed_prog`).

    Returns:
        The exit code: 0, 2 on a usage error (one line on stderr), 130 when Ctrl-C stopped a run.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or typed_prog()
    implicit = not argv or argv[0].startswith("-")  # `run` is the default command: its flags alone, or none
    return _dispatch([DEFAULT_COMMAND, *argv] if implicit else argv, prog, {DEFAULT_COMMAND: prog} if implicit else {})


def _dispatch(argv: list[str], prog: str, progs: dict[str, str]) -> int:
    from ablate.cli.commands import HANDLERS

    try:
        args = parse(build_parser(prog, progs), argv)
        typed = progs.get(args.command, f"{prog} {args.command}")
        return HANDLERS[args.command](args, f"{typed} {shlex.join(argv[1:])}".rstrip(), typed)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
