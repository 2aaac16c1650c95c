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

from ablate.core.lazy import lazy_exports

# Loaded on first use: a Ray worker files through RunLink and SQLStore and never builds a query's table (pandas)
_EXPORTS = {"LEASE_S": "_base", "BaseStore": "_base", "Filing": "_base", "Owner": "_base", "Use": "_base",
            "export_run": "_export", "DEFAULT_NAME": "_keys", "model_key": "_keys", "store_url": "_keys",
            "import_cache": "_legacy", "REUSED_FROM": "_link", "RunLink": "_link", "Lookup": "_query",
            "lookup": "_query", "open_store": "_query", "query": "_query", "SCHEMA_VERSION": "_sql",
            "SQLStore": "_sql"}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)  # the names __getattr__ serves
