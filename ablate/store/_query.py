"""Questions to the store across runs: :func:`query` (every model a run used, filtered on any column) and
:func:`lookup` (one config under one protocol, NATS-Bench style: mean, interval, per-seed values and costs)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Iterable

import pandas as pd

from ablate.core.errors import UsageError
from ablate.store._base import BaseStore
from ablate.store._keys import store_url
from ablate.store._sql import SQLStore

# filters the database applies (indexed columns of a use or its model); any other column is filtered in pandas
SQL_FILTERS = ("run", "trial_id", "key", "phase", "kind", "name", "network", "macro", "protocol", "dataset",
               "epochs", "split_seed", "seed")
LEADING = ["run", "trial_id", "kind", "name", "config", "phase", "seed", "split_seed", "protocol", "dataset",
           "epochs", "macro", "status", "val_top1", "test_top1", "params", "macs", "train_seconds", "reused_from"]
COST_COLUMNS = ("params", "macs", "elementwise_ops", "activations", "train_seconds")


def open_store(store: BaseStore | str | os.PathLike | None = None, *, create: bool = True) -> BaseStore:
    """A store by address: a :class:`BaseStore` as it is, a URL (``postgresql://…``), a SQLite file's path, or None
    for ``results/ablate.db`` (``$ABLATE_RESULTS_DIR/ablate.db``).

    Args:
        store: Where the store is.
        create: Create it where there is none (False: a missing store is a one-line error).

    Raises:
        UsageError: The store cannot be opened (one line naming the fix).
    """
    if isinstance(store, BaseStore):
        return store
    from ablate.results import results_dir

    return SQLStore(store_url(store, results_dir()), create=create)


def _values(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple, set, frozenset, pd.Series)) else [value]


def query(store: BaseStore | str | os.PathLike | None = None, **filters: Any) -> pd.DataFrame:
    """Every model each run used (trained, or reused from another run), one row per run and model.

    Args:
        store: The store (see :func:`open_store`; default ``results/ablate.db``).
        **filters: Column → a value or a list of accepted values, on any column of the result: the axes
            (``nonlinearity="relu"``, ``width=[1, 2]``), ``protocol``, ``seed`` (training seed), ``split_seed``,
            ``phase``, ``run`` (a run's name or folder), ``kind``, ``status``, ``config``, ``reused_from`` …

    Returns:
        The runs' table rows (the columns of ``trials.parquet``), with the run's name (``run``) and folder
        (``run_dir``), the model's ``protocol``, ``dataset``, ``epochs``, ``macro``, ``split_seed``, ``key``,
        the run it was trained in (``trained_in``) and, for a reused one, ``reused_from``; in filing order.

    Raises:
        UsageError: No store there, or a filter on a column the result does not have (one line listing them).

    Example:
        >>> query(protocol="digits", nonlinearity="relu", seed=[0, 1])  # doctest: +SKIP
    """
    opened = open_store(store, create=False)
    where = {k: _values(v) for k, v in filters.items() if k in SQL_FILTERS}
    rows = []
    for use in opened.uses(where):
        row = {**use["row"], "run": use["run_name"] or os.path.basename(use["run"]), "run_dir": use["run"],
               "reused_from": use["reused_from"] or "", "key": use["key"], "trained_in": use["trained_in"]}
        for column in ("protocol", "dataset", "macro", "split_seed"):
            row[column] = use[column]
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=LEADING + ["run_dir", "key", "trained_in"])
    rest = {k: v for k, v in filters.items() if k not in SQL_FILTERS}
    unknown = sorted(set(rest) - set(frame.columns))
    if unknown and len(frame):
        raise UsageError(f"no column {', '.join(unknown)} to filter on; the models' columns are "
                         f"{', '.join(sorted(frame.columns))}")
    for column, value in rest.items():
        if column in frame:
            frame = frame[frame[column].isin(_values(value))]
    return frame[[c for c in LEADING if c in frame] + [c for c in frame.columns if c not in LEADING]] \
        .reset_index(drop=True)


@dataclass(frozen=True)
class Lookup:
    """One config's models under one protocol, as :func:`lookup` finds them.

    Attributes:
        config: The config asked for.
        protocol: The protocol's name.
        metric: The column summarised (``test_top1`` by default).
        values: One row per model (each once, however many runs used it): ``seed`` (training), ``split_seed``,
            ``run`` (where it was trained), the metric, val/test top-1, epochs and the costs.
        mean: The metric's mean over the models.
        interval: Its ``confidence`` t-interval (NaN with fewer than two models).
        costs: The models' mean costs (params, MACs, element-wise ops, activations, train seconds).
    """

    config: str
    protocol: str
    metric: str
    values: pd.DataFrame
    mean: float
    interval: tuple[float, float]
    costs: dict[str, float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def per_seed(self) -> dict[int, float]:
        """Training seed → the metric (the mean, where several splits trained that seed)."""
        return self.values.groupby("seed")[self.metric].mean().to_dict()


def _protocol_name(protocol: Any) -> str | None:
    if protocol is None or isinstance(protocol, str):
        return protocol
    return protocol.as_dict()["name"] if hasattr(protocol, "as_dict") else dict(protocol)["name"]


def _recipe(context: dict[str, Any]) -> str:
    """A filing's recipe and data, the parts two pooled models must share."""
    data = context.get("data") or {}
    return json.dumps({"protocol": context.get("protocol"), "macro": context.get("macro"),
                       "dataset": data.get("dataset"), "splits": data.get("splits")}, sort_keys=True, default=str)


def lookup(config: Any, protocol: Any = None, *, seeds: str | Iterable[int] = "all", metric: str = "test_top1",
           macro: str | None = None, store: BaseStore | str | os.PathLike | None = None,
           confidence: float = 0.95) -> Lookup:
    """What the store knows of one config under one protocol: every model of it (any run, any phase), pooled.

    A config matches every model that builds the same network on the model's macro (two spellings of one network
    are one config). Models of one recipe and data are pooled, whatever run or code version trained them; the
    store keeping several recipes under the protocol's name (another epoch count, say) is an error that lists
    them: pass the protocol itself (``load_protocol("digits").with_overrides(epochs=2)``) to pick one.

    Args:
        config: A block config (``relu-dwconv-w1``) or its :class:`~ablate.models.BlockConfig`.
        protocol: A protocol name, or a ``Protocol`` (its every field must match); None: any, if only one.
        seeds: ``"all"``, or the training seeds to keep.
        metric: The row column to summarise.
        macro: Only models built on this macro.
        store: The store (see :func:`open_store`).
        confidence: The interval's confidence level.

    Returns:
        A :class:`Lookup`.

    Raises:
        UsageError: No model of the config under the protocol (one line saying what the store holds), or several
            recipes under the protocol's name.

    Example:
        >>> found = lookup("relu-dwconv-w1", protocol="digits", seeds="all")  # doctest: +SKIP
        >>> found.mean, found.interval, found.per_seed, found.costs  # doctest: +SKIP
    """
    from scipy import stats

    from ablate.models import BlockConfig
    from ablate.models.fingerprint import network_fingerprint

    name = _protocol_name(protocol)
    opened = open_store(store, create=False)
    where = {"protocol": [name]} if name else {}
    if macro:
        where["macro"] = [macro]
    candidates = opened.uses(where)
    block = BlockConfig.coerce(config)
    networks = {m: network_fingerprint(block, m) for m in {u["macro"] for u in candidates if u["macro"]}}
    found = {u["key"]: u for u in candidates if u["macro"] in networks and u["network"] == networks[u["macro"]]}
    if protocol is not None and not isinstance(protocol, str):
        wanted = protocol.as_dict() if hasattr(protocol, "as_dict") else dict(protocol)
        found = {k: u for k, u in found.items() if u["context"].get("protocol") == wanted}
    if seeds != "all":
        found = {k: u for k, u in found.items() if u["seed"] in set(seeds)}
    if not found:
        held = sorted({(u["protocol"], u["row"].get("config")) for u in candidates})[:8]
        raise UsageError(f"the store {opened.url} holds no model of {block} under {name or 'any protocol'}"
                         f"{'' if seeds == 'all' else f' with seeds {sorted(seeds)}'}; it holds e.g. "
                         f"{', '.join(f'{c} ({p})' for p, c in held) or 'nothing'}")
    recipes = {_recipe(u["context"]): u for u in found.values()}
    if len(recipes) > 1:
        kinds = "; ".join(f"epochs {u['epochs']}, data {u['dataset']} ({u['run_name']})" for u in recipes.values())
        raise UsageError(f"{block} under {name or 'any protocol'} has models of {len(recipes)} recipes ({kinds}): "
                         "pass the protocol itself, e.g. load_protocol(NAME).with_overrides(epochs=N)")
    values = pd.DataFrame([{**{c: u["row"].get(c, math.nan) for c in ("val_top1", "test_top1", "epochs",
                                                                        *COST_COLUMNS)},
                            metric: u["row"].get(metric, math.nan), "seed": u["seed"], "split_seed": u["split_seed"],
                            "run": os.path.basename(u["trained_in"] or ""), "key": key}
                           for key, u in found.items()]).sort_values(["seed", "split_seed"], ignore_index=True)
    column = pd.to_numeric(values[metric], errors="coerce")
    mean = float(column.mean())
    n = int(column.notna().sum())
    interval = tuple(float(x) for x in stats.t.interval(confidence, n - 1, loc=mean, scale=stats.sem(
        column.dropna()))) if n > 1 else (math.nan, math.nan)
    costs = {c: float(pd.to_numeric(values[c], errors="coerce").mean()) for c in COST_COLUMNS}
    only = next(iter(found.values()))
    return Lookup(str(block), only["protocol"] or "", metric, values, mean, interval, costs)
