"""How selection ranks configs: by the run seed's val top-1, ties broken by the run's seed, never by name.

Sorting ties by name would favour the same configs in every run (``hardball-…`` before ``relu-…``); a tie is
instead broken by a hash of the run's seed and the config, so which of two tied configs goes first changes from
seed to seed and favours no name. One rule, used where the run picks what to confirm (``ablate.tune.jobs``) and where
the summary ranks the candidates (``selection_rank``).
"""

from __future__ import annotations

import hashlib


def tie_breaker(seed: int, config: str) -> int:
    """A number that orders tied configs, drawn from the run's seed and the config (stable across processes)."""
    return int.from_bytes(hashlib.sha1(f"{int(seed)}:{config}".encode()).digest()[:8], "big")


def selection_key(seed: int, val_top1: float, config: str) -> tuple[float, int]:
    """The sort key of selection: higher val top-1 first, then the seeded tie-breaker."""
    return -float(val_top1), tie_breaker(seed, config)
