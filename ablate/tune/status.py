"""A trial's status in our terms, from Ray Tune's state and its last result."""

from __future__ import annotations

from typing import Any

from ablate.core.schema import COMPLETED, FAILED, PRUNED, Status


def classify(tune_status: str, result: dict[str, Any], epochs: int) -> str:
    """Our status of a Tune trial.

    Args:
        tune_status: Ray Tune's trial status (``TERMINATED``, ``ERROR``, ``RUNNING``, ``PENDING``, …).
        result: The trial's last result (``epoch`` and our own ``status`` are read).
        epochs: The protocol's epochs, the full budget.

    Returns:
        ``failed`` (an error or a non-finite loss), ``pruned`` (stopped before the full budget), ``completed``,
        ``running`` or ``pending``.
    """
    if tune_status == "ERROR" or result.get("status") == FAILED:
        return FAILED
    if tune_status == "TERMINATED":
        return COMPLETED if result.get("epoch", 0) >= epochs else PRUNED
    return Status.RUNNING if tune_status == "RUNNING" else Status.PENDING


EARLIER_EPOCHS = "earlier_val_top1"  # a result's [[epoch, val top-1], …] that a resumed trial trained before
