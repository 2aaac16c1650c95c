"""How values are written: durations for people (one rule each for sentences — ``status``, the report — and
progress lines), and a table cell as the plain JSON value trackers and Optuna keep."""

from __future__ import annotations

import math
from typing import Any

MISSING = "—"


def duration_text(seconds) -> str:
    """``1 h 2 min 3 s`` / ``2 min 3 s``; a dash for a missing or non-finite value."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return MISSING
    if not math.isfinite(value):
        return MISSING
    hours, rest = divmod(int(round(value)), 3600)
    return (f"{hours} h " if hours else "") + f"{rest // 60} min {rest % 60} s"


def compact_duration(seconds: float) -> str:
    """``2m03s``, or ``1h02m`` from an hour on: short enough for a progress line."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{secs:02d}s"


def cell_value(value: Any) -> Any:
    """A table cell as a plain JSON value, as trackers and Optuna keep it: numpy scalars unwrapped, a missing or
    non-finite number None, anything else JSON has no type for as its text."""
    if hasattr(value, "item"):
        value = value.item()
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value if isinstance(value, (bool, int, float, str)) else str(value)
