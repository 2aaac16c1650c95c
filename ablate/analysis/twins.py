"""Twins: configs whose strings differ but whose networks are the same (``network`` fingerprint,
:mod:`ablate.models.fingerprint`) are one config in every statistic.

Counting twins as two configs adds observations that carry no information (they are the same model under the same
seed: bit-identical hits), inflates an OLS's residual degrees of freedom and shrinks every standard error. Here each
group of twins gets one identity: a baseline's when a baseline builds that network (``relu-hybrid-w0.25`` is
R50-hybrid), else its first model's in table order; its rows take that kind, name, config and axes, and a network
trained twice under one seed and phase counts once. Tables without a ``network`` column (older runs) fall back to the
config string, which merges exact repeats only. The same rule applies to the trials table and to the per-image
predictions, so both always agree on which models a config has.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ablate.core.schema import AXIS_COLUMNS, BASELINE

NETWORK = "network"
ALIASES = "aliases"
IDENTITY = ("kind", "name", "config", *AXIS_COLUMNS)


def network_keys(frame: pd.DataFrame) -> pd.Series:
    """Each row's network: its fingerprint, or its config string (else its name) where the table has none."""
    fallback = (frame["config"] if "config" in frame else frame["name"]).astype(str)
    if NETWORK not in frame:
        return fallback
    keys = frame[NETWORK].astype("string")
    return keys.where(keys.notna() & (keys != ""), fallback).astype(str)


def merge_twins(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of twin configs under their group's identity, each model once.

    Works on the trials table and on the predictions table alike: models are told apart by ``trial_id`` (a
    prediction row per image shares its model's), a network's models by ``seed`` and ``phase``.

    Args:
        frame: Rows with ``kind``, ``name`` and ``config`` (axes, ``network``, ``trial_id``, ``seed``, ``phase``
            where present).

    Returns:
        The rows kept, with ``kind``, ``name``, ``config`` and the axes of their group's identity, and an
        ``aliases`` column: the group's other names, comma-separated ("" for a config without twins).
    """
    if frame.empty or "name" not in frame:
        return frame.assign(**{ALIASES: ""})
    if (frame.groupby(network_keys(frame).to_numpy())["name"].nunique() <= 1).all():
        return frame.assign(**{ALIASES: ""})  # no network under two names: nothing to merge (most runs)
    position = pd.Series(np.arange(len(frame)).astype(str))
    ids = frame["trial_id"].reset_index(drop=True) if "trial_id" in frame else position
    model = ids.astype("string").where(ids.notna() & (ids.astype(str) != ""), "#" + position).astype(str)
    first = (~model.duplicated()).to_numpy()
    models = frame[first].assign(_model=model[first].to_numpy(), _network=network_keys(frame[first]).to_numpy())
    order = models.assign(_not_baseline=(models["kind"] != BASELINE).to_numpy(), _order=np.arange(len(models)))
    identity = order.sort_values(["_not_baseline", "_order"], kind="stable").drop_duplicates("_network") \
        .set_index("_network")
    names = models.groupby("_network", sort=False)["name"].agg(lambda n: list(dict.fromkeys(n)))
    aliases = {key: ", ".join(n for n in names[key] if n != identity.at[key, "name"]) for key in names.index}
    ranked = order.assign(_name=order["_network"].map(identity["name"]).to_numpy()).sort_values(
        ["_not_baseline", "_order"], kind="stable")  # a baseline's own model is the one kept
    kept = ranked[~ranked.duplicated(subset=["_name", *[k for k in ("seed", "phase") if k in ranked]])]
    network_of = pd.Series(kept["_network"].to_numpy(), index=kept["_model"].to_numpy())
    keep = model.isin(network_of.index).to_numpy()
    rows = frame[keep].copy()
    network = pd.Series(model.to_numpy()[keep]).map(network_of)
    for column in IDENTITY:
        if column in rows and column in identity:
            rows[column] = network.map(identity[column]).to_numpy()
    rows[ALIASES] = network.map(aliases).to_numpy()
    return rows
