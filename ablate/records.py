"""What a training leaves in its folder besides the checkpoint: the epoch log and the final model's per-image hits.

``epochs.jsonl`` is the record of work done: one line per epoch actually trained, appended after that epoch's
checkpoint is safe, so a trial retrained from scratch would show its epochs twice (the kill tests rely on it).
``predictions.npz`` holds, per evaluation split, which images the final model got right: the evidence every
comparison pairs image by image. Both are read back by the driver to build a model's table rows.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ablate.core.files import append_line, damaged, read_lines, write_atomic

EPOCH_LOG_NAME = "epochs.jsonl"
PREDICTIONS_NAME = "predictions.npz"


def append_epoch_log(directory: Path, metrics: dict[str, Any]) -> None:
    """Append one line per epoch actually trained, after its checkpoint is safe.

    The log is the record of work done: a run resumed from its checkpoint adds only the epochs it trains, so a
    trial retrained from scratch would show its epochs twice. Results tables build their learning curves from it.
    """
    append_line(directory / EPOCH_LOG_NAME, json.dumps(metrics, default=float))


def read_epoch_log(directory: str | os.PathLike) -> list[dict[str, Any]]:
    """The epochs trained under ``directory``, in order ([] when none were); a last line a kill tore is ignored
    (its epoch is trained again from the checkpoint before it)."""
    return read_lines(Path(directory) / EPOCH_LOG_NAME)


def save_predictions(directory: Path, correct: dict[str, np.ndarray]) -> None:
    """Each evaluation split's per-image top-1 hits of the final model, written atomically beside the checkpoint."""
    write_atomic(directory / PREDICTIONS_NAME, lambda tmp: np.savez_compressed(
        tmp, **{split: np.asarray(hits, dtype=bool) for split, hits in correct.items()}))


def read_predictions(directory: str | os.PathLike) -> dict[str, np.ndarray]:
    """The per-image hits a completed training left in ``directory`` ({} when it left none)."""
    path = Path(directory) / PREDICTIONS_NAME
    if not path.is_file():
        return {}
    try:
        with np.load(path) as stored:
            return {split: stored[split].astype(bool) for split in stored.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise damaged(path, "not a readable .npz of per-image hits") from exc


def encode_hits(hits) -> str:
    """Per-image hits as a compact string of 0s and 1s (how a model's evidence sits in its record's JSON)."""
    return "".join("1" if h else "0" for h in hits)
