"""The package's errors, under one root: user-facing ones are one line that says what is wrong and how to fix it
(the CLI exits 2 on them)."""

from __future__ import annotations

import shlex
import sys
from typing import NoReturn


class AblateError(Exception):
    """The root of every error ablate raises on purpose (``except AblateError`` catches them all)."""


class UsageError(AblateError):
    """Bad input from the user (flag, file, directory). Its message is shown as is, without a traceback."""


def error_summary(err: BaseException, limit: int = 300) -> str:
    """The error that really happened, in one line: ``Type: first line of its message``.

    Ray wraps a remote exception in a task error whose text is a long traceback and whose ``cause`` is the
    original; where no cause survived (it could not be pickled), the traceback's last line names the error.

    Args:
        err: The exception caught, possibly a Ray wrapper.
        limit: The most characters returned.

    Returns:
        One line, e.g. ``RuntimeError: injected crash``.
    """
    while getattr(err, "cause", None) is not None and err.cause is not err:
        err = err.cause
    if type(err).__module__.startswith("ray."):
        return traceback_summary(str(err), type(err).__name__, limit)
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return (f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__)[:limit]


def traceback_summary(text: str, default: str, limit: int = 300) -> str:
    """A traceback's text in one line: its last line, which names the error (``default`` when it is empty)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else default)[:limit]


def moved_entry(module: str, command: str) -> NoReturn:
    """The end of ``python -m MODULE ARGS``, a module that is a library now, not a command: one line on stderr naming
    the command line's ``command`` with the same arguments, exit code 2 (the command line sits above the library, so
    the library cannot hand its arguments over without the two importing each other)."""
    typed = shlex.join(["python", "-m", "ablate", command, *sys.argv[1:]])
    print(f"error: `python -m {module}` is now `{typed}` (or `python run_ablation.py {command} …`)", file=sys.stderr)
    raise SystemExit(2)
