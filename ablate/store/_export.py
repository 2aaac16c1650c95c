"""A run's tables written from the store alone: ``trials``, ``summary``, ``curves`` and ``predictions`` of the
models the run used, as ``ablate.results.write_tables`` writes them from the run's record."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ablate.core.schema import CURVE_COLUMNS, PREDICTION_COLUMNS
from ablate.results import prediction_frame, write_tables
from ablate.store._base import BaseStore


def export_run(store: BaseStore, run: str | Path, folder: str | Path | None = None) -> pd.DataFrame:
    """Write the tables of the models ``run`` used (trained or reused) from ``store`` into ``folder``.

    Args:
        store: The store.
        run: The run's folder (its identity in the store).
        folder: Where the tables go (default: the run's folder).

    Returns:
        The trials table written.
    """
    filed = store.outcomes(str(run))
    rows = [outcome["row"] for outcome in filed.values()]
    curves = [pd.DataFrame(o["curves"]).assign(trial_id=o["row"]["trial_id"], name=o["row"]["name"],
                                               kind=o["row"]["kind"]) for o in filed.values() if o["curves"]]
    predictions = [prediction_frame(o["predictions"], o["row"]) for o in filed.values() if o["predictions"]]
    curve_table = pd.concat(curves, ignore_index=True).reindex(columns=CURVE_COLUMNS) if curves \
        else pd.DataFrame(columns=CURVE_COLUMNS)
    prediction_table = pd.concat(predictions, ignore_index=True) if predictions \
        else pd.DataFrame(columns=PREDICTION_COLUMNS)
    target = Path(folder if folder is not None else run)
    target.mkdir(parents=True, exist_ok=True)
    return write_tables(target, rows, curve_table, prediction_table)
