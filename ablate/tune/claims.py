"""Claims on the store: runs that share a store train each model once between them.

A run about to train a model the store lacks first claims its key (a row of the store's claims, inserted only if
none is there: :meth:`ablate.store.BaseStore.claim`), naming its driver's host and pid. A second run that finds the
claim does not train the model again: a Ray task with no CPU of its own (:func:`wait_for_model`) waits until the
model is filed and hands it over — or until the claim is gone without one (the claimant's training failed, or its
driver died), and the second run then claims and trains it itself. A claim whose driver's pid no longer runs on its
host is stale at once; one from another host is stale once its driver has not renewed it for ``LEASE_S`` seconds
(:class:`Heartbeat` renews a driver's claims while it holds any), so a dead driver never blocks another for long.
The claimant releases its claim as the training ends, whatever the outcome.
"""

from __future__ import annotations

import threading
import time

from ablate.core.errors import error_summary
from ablate.store import LEASE_S, BaseStore, Filing, Owner

POLL_S = 2.0
RENEW_EVERY_S = LEASE_S / 10


def wait_for_model(store: BaseStore, key: str, poll_s: float = POLL_S) -> Filing | None:
    """Wait for the run that claimed ``key`` to file it: the filing once it is there, or None once the claim is
    gone (released, or stale) without one — the caller then claims and trains it itself."""
    while True:
        found = store.get(key)
        if found is not None:
            return found
        holder = store.holder(key)
        if holder is None or holder.stale():
            return store.get(key)  # filed just before the release, or not at all
        time.sleep(poll_s)


class Heartbeat:
    """Renews a driver's claims every ``RENEW_EVERY_S`` seconds from a daemon thread, while it holds any, until
    :meth:`stop` (a run stops it as it ends: :meth:`ablate.tune.jobs.JobRunner.close`).

    Args:
        store: The store holding the claims.
        owner: The driver.
    """

    def __init__(self, store: BaseStore, owner: Owner, every_s: float = RENEW_EVERY_S):
        self.store, self.owner, self.every_s = store, owner, every_s
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        """Start renewing (a no-op while it already is); it stops by itself once the driver holds no claim."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ablate-claims", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop renewing; waits up to ``timeout_s`` for a renewal under way to end."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                if not self.store.renew(self.owner):
                    return
            except Exception as err:  # a store that failed once may answer the next time; the lease is long
                print(f"[ablate] warning: could not renew this run's claims in {self.store.url}: "
                      f"{error_summary(err)}", flush=True)
