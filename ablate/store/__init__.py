"""The study store: every trained model kept once, across runs, reused and queried.

Every model a run files (baselines and candidates, any phase) also goes into the store, keyed by what determines
its outcome (:func:`model_key`): its table row, learning curve, per-image hits on val and test, costs, and which
runs used it. Before a run trains a model it looks it up here; a model found is filed into the run as reused,
never trained twice. A run's folder stays a view: ``records/`` and the tables are written as before.

Backends (:class:`BaseStore`, in the style of Optuna's storages): :class:`SQLStore` over an embedded SQLite file
(``results/ablate.db`` by default) or a PostgreSQL server by URL (``--store postgresql://…``), where a cluster's
workers file straight in, with no shared folder for the record.

Example:
    >>> from ablate.store import lookup, query
    >>> query(protocol="digits", nonlinearity="relu")  # doctest: +SKIP
    >>> lookup("relu-dwconv-w1", protocol="digits").interval  # doctest: +SKIP
"""

from ablate.store._base import LEASE_S, BaseStore, Filing, Owner, Use
from ablate.store._export import export_run
from ablate.store._keys import DEFAULT_NAME, model_key, store_url
from ablate.store._legacy import import_cache
from ablate.store._link import REUSED_FROM, RunLink
from ablate.store._query import Lookup, lookup, open_store, query
from ablate.store._sql import SCHEMA_VERSION, SQLStore

__all__ = ["DEFAULT_NAME", "LEASE_S", "REUSED_FROM", "SCHEMA_VERSION", "BaseStore", "Filing", "Lookup", "Owner",
           "RunLink", "SQLStore", "Use", "export_run", "import_cache", "lookup", "model_key", "open_store", "query",
           "store_url"]
