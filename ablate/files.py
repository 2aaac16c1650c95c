"""Every file ablate writes is written atomically, and every file of a run folder is read defensively.

Writing: :func:`write_atomic` writes into a temporary file beside the target, then ``os.replace`` swaps it in, so a
reader — or a run resumed after a kill — sees the old file or the new one, never half of one. Append-only logs
(``epochs.jsonl``) cannot be swapped; :func:`append_line` first cuts a torn last line back off, and
:func:`read_lines` ignores one, as Optuna's journal reader does.

Reading: a missing optional file is simply absent; a damaged one (truncated JSON, an unreadable parquet) is a
:class:`~ablate.errors.UsageError` of one line naming the file and what is wrong with it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ablate.errors import UsageError


def write_atomic(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Write ``path`` by ``write(temporary_path)`` and swap it in with ``os.replace``.

    Args:
        path: The file to (re)write; its folder is created.
        write: Writes the whole content to the path it is given (which ends in the same suffix as ``path``).

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix or ".tmp")
    os.close(handle)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, data: Any, **dumps: Any) -> Path:
    """Atomically write ``data`` as JSON to ``path``."""
    return write_text(path, json.dumps(data, **dumps))


def damaged(path: Path, what: str) -> UsageError:
    """The one-line error for a run file that exists but cannot be read."""
    return UsageError(f"{path} is damaged ({what}); restore or delete it (a resumed run rewrites the run's tables), "
                      "or pass another results/<run>")


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON object file: ``{}`` when it does not exist.

    Raises:
        UsageError: The file exists but is not a complete JSON object (e.g. cut short by a kill).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise damaged(path, f"unreadable: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise damaged(path, f"not valid JSON: {getattr(exc, 'msg', exc)} at line {getattr(exc, 'lineno', '?')}") from exc
    if not isinstance(data, dict):
        raise damaged(path, f"a JSON {type(data).__name__}, not an object")
    return data


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A parquet table written by ablate.

    Raises:
        UsageError: The file is missing or cannot be read as parquet.
    """
    path = Path(path)
    try:
        return pd.read_parquet(path)
    except FileNotFoundError as exc:
        raise UsageError(f"{path} not found: run an ablation first, or pass its results/<run> folder") from exc
    except Exception as exc:  # pyarrow raises its own types for every kind of damage
        raise damaged(path, f"not a readable parquet table: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") \
            from exc


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line to a log, first cutting off a torn last line (one a kill left without its newline)."""
    path = Path(path)
    with open(path, "a+b") as log:
        log.seek(0, os.SEEK_END)
        size = log.tell()
        if size:
            log.seek(max(0, size - 1))
            if log.read(1) != b"\n":
                log.seek(0)
                content = log.read()
                log.truncate(content.rfind(b"\n") + 1)
                log.seek(0, os.SEEK_END)
        log.write(line.rstrip("\n").encode("utf-8") + b"\n")
        log.flush()
        os.fsync(log.fileno())


def read_lines(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The JSON lines of a log ([] when it does not exist); a torn last line (one without its newline: every line is
    appended whole with its newline, so any text after the last one is an append a kill cut short) is ignored.

    Raises:
        UsageError: A complete line that is not JSON (the log is damaged, not merely cut short).
    """
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines[:-1], 1):  # the part after the last newline is torn (or empty)
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as exc:
            raise damaged(path, f"line {number} is not JSON") from exc
    return records
