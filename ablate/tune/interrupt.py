"""Ctrl-C stops a run within seconds: Tune's own interrupt handling stops its trials and saves its state, and an
interrupted ``fit`` becomes a ``KeyboardInterrupt`` (Tune would return normally, and the run would go on to its
next phase); the Ray tasks still running are cancelled. What had ended is filed, and ``--resume`` goes on."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import ray


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def fit(tuner) -> Any:
    """``tuner.fit()``, with Ctrl-C (SIGINT) ending it as Tune does — its trials stopped, its experiment state saved,
    in seconds — and then raised as ``KeyboardInterrupt``; a second Ctrl-C raises at once.

    Tune swaps in a SIGINT handler of its own for the fit, which on the first signal restores the handler it found
    and ends the fit; it never restores it otherwise. So ours goes in first: found again after the fit, it says the
    fit was interrupted; and it is put back either way, so that a Ctrl-C after the fit is never swallowed.

    Returns:
        What ``tuner.fit()`` returns.

    Raises:
        KeyboardInterrupt: Ctrl-C stopped the fit.
    """
    if threading.current_thread() is not threading.main_thread():  # no signals there: Tune installs none either
        return tuner.fit()
    previous = signal.signal(signal.SIGINT, _interrupt)
    try:
        result = tuner.fit()
    finally:
        after = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, previous)
    tune_handled = not int(os.getenv("TUNE_DISABLE_SIGINT_HANDLER", "0"))
    if tune_handled and after is _interrupt:  # Tune's handler ran (once) and gave ours back: interrupted
        raise KeyboardInterrupt
    return result


def cancel(refs) -> None:
    """Stop the Ray tasks still running after Ctrl-C: each one's worker is killed; its training's checkpoint stays
    for ``--resume`` (the run's actors go with the driver)."""
    for ref in refs:
        try:
            ray.cancel(ref, force=True)
        except Exception:  # already ended, or Ray is going down: nothing left to stop
            pass
