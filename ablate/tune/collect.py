"""From trained models to table rows: one row builder for candidates and baselines alike, and the run's metadata."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ablate.core.errors import error_summary
from ablate.core.schema import CANDIDATE, COMPLETED, COUNT_COLUMNS, SYMMETRY_COLUMNS
from ablate.models import BlockConfig
from ablate.models.fingerprint import network_fingerprint
from ablate.records import encode_hits, read_epoch_log, read_predictions
from ablate.space import config_hash
from ablate.tune.status import classify
from ablate.tune.trainables import TRIAL_LATENCY

if TYPE_CHECKING:
    from ablate.tune.settings import RunSettings


def identity_columns(block: BlockConfig, macro: str) -> dict[str, Any]:
    """The columns that say which model a row is: config string, its hash on the macro, the fingerprint of the
    network it builds there (twin configs share it) and the axes."""
    return {"config": str(block), "config_hash": config_hash(block, macro),
            "network": network_fingerprint(block, macro), "nonlinearity": block.nonlinearity,
            "spatial": block.spatial, "width": block.width}


def training_row(*, kind: str, trial_id: str, name: str, block: BlockConfig, settings: RunSettings, status: str,
                 phase: str, seed: int | None = None, reason: str = "", history: list[dict[str, Any]] = (),
                 measured: dict[str, Any] | None = None) -> dict[str, Any]:
    """The table row of one trained model (candidate or baseline, any phase and training seed), read off its
    per-epoch history: the last epoch gives the validation metrics; test top-1 counts only for a completed model.
    ``measured`` holds what the worker measured: counts, an in-trial latency, the node it ran on.
    """
    last = history[-1] if history else {}
    return {
        "kind": kind, "trial_id": trial_id, "name": name, **identity_columns(block, settings.macro), **(measured or {}),
        "status": status, "reason": reason, "epochs": int(last.get("epoch", 0)),
        "val_top1": last.get("val_top1", math.nan), "val_top5": last.get("val_top5", math.nan),
        "val_loss": last.get("val_loss", math.nan),
        "test_top1": last.get("test_top1", math.nan) if status == COMPLETED else math.nan,
        "train_seconds": float(sum(e.get("epoch_seconds", 0.0) for e in history)),
        "seed": settings.seed if seed is None else seed, "phase": phase,
    }


Outcome = dict[str, Any]
"""One trained model's outcome: its table ``row``, its learning curve (``curves``: the epoch log's dicts) and its
per-image evidence (``predictions``: split → :func:`~ablate.records.encode_hits` text; empty unless completed)."""


def outcome_of(row: dict[str, Any], history: list[dict[str, Any]], correct: dict[str, Any]) -> Outcome:
    """An :data:`Outcome` from a row, the epoch log it was read off and the per-image hits (split → bool array)."""
    return {"row": row, "curves": list(history),
            "predictions": {split: encode_hits(hits) for split, hits in correct.items()}}


def candidate_outcome(settings: RunSettings, config: dict[str, Any], metrics: dict[str, Any], trial_id: str,
                      error: BaseException | str | None = None) -> Outcome:
    """One Tune trial's outcome as Tune ends it: its last result (what the worker measured and how it ended) with
    what the trainer left in the block's state folder: its own epoch log and ``predictions.npz``.

    Ray's per-trial metrics would repeat epochs a restored trial re-reports; the trainer's log holds each epoch
    it actually trained, once (a trial trained twice would show it, which the kill/resume test relies on).
    """
    from ablate.tune.search import PHASE  # the driver's (Tune's callback): a worker never imports Optuna for it

    block = settings.space.block_of(config)
    history = read_epoch_log(settings.state_dir(block))
    epoch = history[-1]["epoch"] if history else 0
    status = classify("ERROR" if error else "TERMINATED", {**metrics, "epoch": epoch}, settings.protocol.epochs)
    reason = (error if isinstance(error, str) else error_summary(error)) if error else metrics.get("reason", "")
    measured = {k: metrics[k] for k in (*COUNT_COLUMNS, TRIAL_LATENCY, *SYMMETRY_COLUMNS, "node") if k in metrics}
    row = training_row(kind=CANDIDATE, trial_id=trial_id, name=str(block), block=block, settings=settings,
                       status=status, phase=config.get(PHASE, "search"), reason=reason, history=history,
                       measured=measured)
    return outcome_of(row, history, read_predictions(settings.state_dir(block)) if status == COMPLETED else {})


def run_meta(settings: RunSettings, **extra: Any) -> dict[str, Any]:
    """run.json: the settings (``RunSettings.to_json``, plugins with their source hashes), the folder the run
    was started in, the versions and hardware, and ``extra`` (start and finish times, data split sizes, wall time)."""
    from ablate.results import hardware, versions

    return {**settings.to_json(), "run_dir": str(settings.run_dir), "versions": versions(), "hardware": hardware(),
            **extra}
