"""Every file ablate writes is written atomically, and every file of a run folder is read defensively.

Writing: :func:`write_atomic` writes into a temporary file beside the target, then ``os.replace`` swaps it in, so a
reader — or a run resumed after a kill — sees the old file or the new one, never half of one. Append-only logs
(``epochs.jsonl``) cannot be swapped; :func:`append_line` first cuts a torn last line back off, and
:func:`read_lines` ignores one, as Optuna's journal reader does.

A full disk is :class:`DiskFull`, one line naming the folder, what it has free and about how much the write
needed, at every write made here — also when the writer reports it in its own words (``torch.save`` says
"unexpected pos …"): a write that fails while its folder has less free space than it needed is a full disk.

Reading: a missing optional file is simply absent; a damaged one (truncated JSON, an unreadable parquet) is a
:class:`~ablate.core.errors.UsageError` of one line naming the file and what is wrong with it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ablate.core.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
MIN_FREE = 1 << 20  # a write that fails with less than this free beside it failed for want of space


class DiskFull(UsageError):
    """A write failed because the disk (or the user's quota) is full: one line naming the folder and the space."""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _mib(size: float) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def disk_full(folder: Path, needed: int, free: int | None = None) -> DiskFull:
    """The one-line error for a write into ``folder`` that ran out of space."""
    if free is None:
        free = _free(folder)
    return DiskFull(f"disk full: {folder} has {_mib(free)} free, and writing there needs about {_mib(needed)}; "
                    "free space on that disk (or move the results folder) and resume the run: nothing written before "
                    "is lost")


def check_room(folder: Path, needed: int = MIN_FREE) -> None:
    """Raise :class:`DiskFull` before a write into ``folder`` when its disk has less than ``needed`` bytes free: a
    database that runs out of space midway leaves the space that is left to nobody (Tune's state, the tables).

    Raises:
        DiskFull: ``folder``'s disk has less than ``needed`` bytes free.
    """
    free = _free(folder)
    if free < needed:
        raise disk_full(folder, needed, free)


def _free(folder: Path) -> int:
    """Bytes free on the disk of ``folder`` (or of its nearest existing parent); unknown: as good as unlimited."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 1 << 62


def is_full(err: BaseException) -> bool:
    """Whether an error is the operating system's "no space left" (or "quota exceeded"), however it is wrapped."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, DiskFull) or isinstance(err, OSError) and err.errno in FULL_ERRNOS:
            return True
        err = err.__cause__ or err.__context__
    return False


FULL_WORDS = ("No space left on device", "Disk quota exceeded", f"{DiskFull.__name__}: ")


def find_disk_full(err: BaseException, folder: Path) -> DiskFull | None:
    """Whether an error that stopped a run came from a full disk, and its one line if so.

    A worker's :class:`DiskFull` (one line already) is kept as it is, however Ray wrapped it; an ``OSError``
    ENOSPC anywhere in the chain, the words of one in the text of a wrapped error, or any error while ``folder``
    is left with under ``MIN_FREE`` bytes free (torch's "unexpected pos", Ray's own writes) is a full ``folder``.

    Args:
        err: What stopped the run.
        folder: The run folder: the disk it is on, and what one more checkpoint there takes (the largest file).
    """
    seen, chain = set(), []
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        chain.append(err)
        err = getattr(err, "cause", None) or err.__cause__ or err.__context__
    for link in chain:
        if isinstance(link, DiskFull) and str(link.args[0] if link.args else "").startswith("disk full"):
            return DiskFull(link.args[0])
    for link in chain:
        text = str(link)
        if DiskFull.__name__ in text and "disk full: " in text:  # a worker's line inside Ray's traceback text
            return DiskFull(text[text.index("disk full: "):].splitlines()[0])
    largest = max((_size(p) for p in folder.rglob("*") if p.is_file()), default=0) if folder.is_dir() else 0
    needed = max(largest + MIN_FREE, MIN_FREE)
    if any(is_full(link) or any(w in str(link) for w in FULL_WORDS) for link in chain) or _free(folder) < MIN_FREE:
        return disk_full(folder, needed)
    return None


def as_disk_full(err: BaseException, target: Path, written: int) -> DiskFull | None:
    """The :class:`DiskFull` a failed write of ``target`` amounts to, or None when the disk is not what failed.

    Args:
        err: What the writer raised (an ``OSError`` ENOSPC, or a writer's own words such as torch's "unexpected pos").
        target: The file being written.
        written: Bytes the writer had got onto the disk before it failed.

    Returns:
        The error, when the OS said the disk is full or the folder is left with less free space than the write
        needed (the old version of the file, or what had been written, or 1 MiB, whichever is most).
    """
    needed = max(_size(target), written + MIN_FREE, MIN_FREE)
    free = _free(target.parent)
    if isinstance(err, DiskFull):
        return err
    if is_full(err) or (isinstance(err, (OSError, RuntimeError)) and free < needed):
        return disk_full(target.parent, needed, free)
    return None


def write_atomic(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Write ``path`` by ``write(temporary_path)`` and swap it in with ``os.replace``.

    Args:
        path: The file to (re)write; its folder is created.
        write: Writes the whole content to the path it is given (which ends in the same suffix as ``path``).

    Returns:
        ``path``.

    Raises:
        DiskFull: The disk filled up: the old file is left as it was, and no temporary file is left behind.
    """
    path = Path(path)
    tmp, full = None, None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix or ".tmp")
        os.close(handle)
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException as err:
        written = _size(Path(tmp)) if tmp else 0
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        full = as_disk_full(err, path, written) if isinstance(err, Exception) else None
        if full is None or full is err:
            raise
    if full is not None:
        # raised here, not chained to the writer's error: its traceback may hold the temporary file open
        # (torch.save's does), and the space comes back only once nothing refers to it
        raise full
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
        raise damaged(path, f"not valid JSON: {getattr(exc, 'msg', exc)} "
                            f"at line {getattr(exc, 'lineno', '?')}") from exc
    if not isinstance(data, dict):
        raise damaged(path, f"a JSON {type(data).__name__}, not an object")
    return data


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A parquet table written by ablate.

    Raises:
        UsageError: The file is missing or cannot be read as parquet.
    """
    import pandas as pd  # here, not at the top: a Ray worker imports this module and never reads a table

    path = Path(path)
    try:
        return pd.read_parquet(path)
    except FileNotFoundError as exc:
        raise UsageError(f"{path} not found: run an ablation first, or pass its results/<run> folder") from exc
    except Exception as exc:  # pyarrow raises its own types for every kind of damage
        raise damaged(path, "not a readable parquet table: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc


def _cut_torn(log) -> int:
    """Cut a file open in ``a+b`` back to its last newline; return the bytes cut (0 when its last line is whole)."""
    log.seek(0, os.SEEK_END)
    size = log.tell()
    if not size:
        return 0
    log.seek(size - 1)
    if log.read(1) == b"\n":
        return 0
    log.seek(0)
    keep = log.read().rfind(b"\n") + 1
    log.truncate(keep)
    log.flush()
    os.fsync(log.fileno())
    return size - keep


def cut_torn_tail(path: str | os.PathLike) -> int:
    """Cut a log's torn last line (one a kill or a full disk left without its newline) off, so that the next
    append starts a line of its own; returns the bytes cut (0 when the file is whole or absent)."""
    path = Path(path)
    if not path.is_file():
        return 0
    with open(path, "r+b") as log:
        return _cut_torn(log)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line to a log, first cutting off a torn last line (one a kill left without its newline).

    Raises:
        DiskFull: The disk filled up (the part of the line written is cut off again, so the log stays whole).
    """
    path = Path(path)
    data = line.rstrip("\n").encode("utf-8") + b"\n"
    with open(path, "a+b", buffering=0) as log:  # unbuffered: nothing left to flush (and fail) on close
        _cut_torn(log)
        try:
            view = memoryview(data)
            while view:
                view = view[log.write(view):]
            os.fsync(log.fileno())
        except OSError as err:
            if not is_full(err):
                raise
            try:
                _cut_torn(log)
            except OSError:
                pass  # read_lines ignores a torn last line anyway
            raise disk_full(path.parent, len(data) + MIN_FREE) from err


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
