"""The vocabulary of a run's tables, written once: columns and their order, row kinds, phases, statuses, and the
rule that says which rows are the run's own search trials.

``trials.parquet`` has one row per trained model (``TRIAL_COLUMNS``, then any extra axes of the space),
``curves.parquet`` one per model and epoch (``CURVE_COLUMNS``), ``predictions.parquet`` one per model, evaluation
split and image (``PREDICTION_COLUMNS``); docs/ARCHITECTURE.md describes each column.
"""

from __future__ import annotations

import pandas as pd

TRIAL_COLUMNS = [
    "kind", "trial_id", "name", "config", "config_hash", "network", "nonlinearity", "spatial", "width",
    "status", "reason",
    "epochs", "val_top1", "val_top5", "val_loss", "test_top1", "delta_top1", "params", "macs", "elementwise_ops",
    "uncounted_ops", "activations", "latency_ms", "throughput", "trial_latency_ms", "train_seconds", "seed", "phase",
    "symmetry_gap", "symmetric", "node",
]
AXIS_COLUMNS = ("nonlinearity", "spatial", "width")
CURVE_COLUMNS = ["trial_id", "name", "kind", "epoch", "train_loss", "val_loss", "val_top1", "val_top5", "lr",
                 "epoch_seconds", "images_per_second"]
# One row per trained model, evaluation split and image: whether the final model's top-1 was right. Comparisons pair
# two models image by image through it (``image`` is the index in the split's fixed order).
PREDICTION_COLUMNS = ["trial_id", "kind", "name", "config", "network", "seed", "phase", "split", "image", "correct"]

CANDIDATE, BASELINE = "candidate", "baseline"  # ``kind``: a block of the space, or a reference network
# ``phase``: a design trial (full budget, never stopped early), a sampler's trial, a confirmation rerun of a
# selected candidate under a fresh seed, a model of an ablation design (every seed of every config: nothing is
# selected there); baselines carry the phase of the seed they train under
DESIGN, SEARCH, CONFIRM, ABLATION = "design", "search", "confirm", "ablation"
PHASES = (DESIGN, SEARCH, CONFIRM, ABLATION)
SELECTION_PHASES = (DESIGN, SEARCH)  # the run seed's models that selection ranks
EVIDENCE_PHASES = (CONFIRM, ABLATION)  # models nothing selected on: what verdicts judge
# ``status``: the first three are final; a live table also shows trials still running or waiting
COMPLETED, PRUNED, FAILED = "completed", "pruned", "failed"
FINAL_STATUSES = (COMPLETED, PRUNED, FAILED)
STATUSES = (*FINAL_STATUSES, "running", "pending")
# ``name`` of the baseline rows (``ablate.models.baselines`` gives each its block and timm name), and the one that
# ``delta_top1`` is measured against
BASELINE_NAMES = ("ResNet50", "R50-max", "R50-hybrid")
REFERENCE_BASELINE = "ResNet50"
# ``symmetric``: a model whose symmetry gap is at most this fraction of its largest |logit| (ablate.models.symmetry)
SYMMETRY_RTOL = 1e-3


def search_trials(table: pd.DataFrame) -> pd.DataFrame:
    """The run's own candidate trials (design and search): candidate rows other than confirmation reruns and
    ablation models."""
    if "kind" not in table:
        return table.iloc[0:0]
    trials = table[table["kind"] == CANDIDATE]
    return trials[~trials["phase"].astype(str).isin(EVIDENCE_PHASES)] if "phase" in trials else trials

