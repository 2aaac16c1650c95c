"""The vocabulary of a run's tables, written once: columns and their order, the values of ``kind``, ``phase``,
``status`` and ``evidence`` (string enums: a member equals its value, so tables and JSON hold plain strings), and
the row filters every stage uses.

``trials.parquet`` has one row per trained model (``TRIAL_COLUMNS``, then any extra axes of the space),
``curves.parquet`` one per model and epoch (``CURVE_COLUMNS``), ``predictions.parquet`` one per model, evaluation
split and image (``PREDICTION_COLUMNS``); docs/ARCHITECTURE.md describes each column.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the vocabulary is read by --help (the trackers' registry): no pandas to import it
    import pandas as pd

TRIAL_COLUMNS = [
    "kind", "trial_id", "name", "config", "config_hash", "network", "nonlinearity", "spatial", "width",
    "status", "reason",
    "epochs", "val_top1", "val_top5", "val_loss", "test_top1", "delta_top1", "params", "macs", "elementwise_ops",
    "uncounted_ops", "activations", "latency_ms", "throughput", "trial_latency_ms", "train_seconds", "seed", "phase",
    "symmetry_gap", "symmetric", "node",
]
AXIS_COLUMNS = ("nonlinearity", "spatial", "width")
COUNT_COLUMNS = ("params", "macs", "elementwise_ops", "uncounted_ops", "activations")  # fvcore's counts of a model
SYMMETRY_COLUMNS = ("symmetry_gap", "symmetric")  # ablate.models.symmetry's measurement
COST_COLUMNS = ("params", "macs", "elementwise_ops", "activations", "latency_ms", "throughput", "trial_latency_ms")
# How a reader types the trials' columns (a table written mid-run leaves cells empty)
NUMERIC_COLUMNS = ("val_top1", "test_top1", "delta_top1", "params", "macs", "elementwise_ops", "latency_ms",
                   "throughput", "epochs")
TEXT_COLUMNS = ("name", "kind", "status", "reason", "config", "trial_id", "phase", "uncounted_ops")
CURVE_COLUMNS = ["trial_id", "name", "kind", "epoch", "train_loss", "val_loss", "val_top1", "val_top5", "lr",
                 "epoch_seconds", "images_per_second"]
# One row per trained model, evaluation split and image: whether the final model's top-1 was right. Comparisons pair
# two models image by image through it (``image`` is the index in the split's fixed order).
PREDICTION_COLUMNS = ["trial_id", "kind", "name", "config", "network", "seed", "phase", "split", "image", "correct"]
# One row per config (``summary.parquet``, ``ablate.analysis.summarize``); docs/ARCHITECTURE.md describes each column
SUMMARY_COLUMNS = [
    "kind", "name", "config", "aliases", "phases", "n", "seeds", "selection_val_top1", "selection_rank", "n_confirm",
    "evidence", "test_top1_mean", "test_top1_se", "test_top1_ci_low", "test_top1_ci_high", "val_top1_mean",
    "delta_mean", "delta_ci_low", "delta_ci_high", "delta_p",
    "equal_macs_baseline", "delta_equal_macs", "delta_equal_macs_ci_low", "delta_equal_macs_ci_high",
    "delta_equal_macs_p", *COST_COLUMNS, "uncounted_ops", "epochs", *SYMMETRY_COLUMNS,
]



class Kind(StrEnum):
    """``kind``: a block of the space, or a reference network."""

    CANDIDATE = "candidate"
    BASELINE = "baseline"


class Phase(StrEnum):
    """``phase``: why a model was trained. A design trial (full budget, never stopped early), a sampler's trial, a
    confirmation rerun of a selected candidate under a fresh seed, a model of an ablation design (every seed of
    every config: nothing is selected there); baselines carry the phase of the seed they train under."""

    DESIGN = "design"
    SEARCH = "search"
    CONFIRM = "confirm"
    ABLATION = "ablation"


class Status(StrEnum):
    """``status``: the first three are final; a live table also shows trials still running or waiting."""

    COMPLETED = "completed"
    PRUNED = "pruned"
    FAILED = "failed"
    RUNNING = "running"
    PENDING = "pending"


class EvidenceKind(StrEnum):
    """A summary row's ``evidence``: what its test top-1 stands on — models nothing selected on (fresh seeds), or
    the run seed's one model (the model selection ranked)."""

    CONFIRMED = "confirm"
    RUN_SEED = "design"


class VerdictKind(StrEnum):
    """A verdict's ``kind`` (``ablate.analysis.verdicts``): what it compares."""

    ABLATION = "ablation"  # a variant against the reference block
    REFERENCE = "reference"  # the reference block against a baseline
    EFFECT = "effect"  # an axis choice against the axis's reference choice, over the other axes
    BASELINE = "baseline"  # the best confirmed candidate against a baseline
    EQUAL_MACS = "equal_macs"  # a candidate against the baseline front at its MACs


# The members by their old names: ``kind`` / ``phase`` / ``status`` values compare equal to these strings
CANDIDATE, BASELINE = Kind.CANDIDATE, Kind.BASELINE
DESIGN, SEARCH, CONFIRM, ABLATION = Phase.DESIGN, Phase.SEARCH, Phase.CONFIRM, Phase.ABLATION
PHASES = tuple(Phase)
SELECTION_PHASES = (DESIGN, SEARCH)  # the run seed's models that selection ranks
EVIDENCE_PHASES = (CONFIRM, ABLATION)  # models nothing selected on: what verdicts judge
EVIDENCE_SPLIT = "test"  # the split verdicts judge on: nothing selects on it
COMPLETED, PRUNED, FAILED = Status.COMPLETED, Status.PRUNED, Status.FAILED
FINAL_STATUSES = (COMPLETED, PRUNED, FAILED)
STATUSES = tuple(Status)
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



def completed(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of models trained to the end (a table without ``status`` counts as all completed)."""
    return table[table["status"] == COMPLETED] if "status" in table else table


def of_kind(table: pd.DataFrame, kind: Kind) -> pd.DataFrame:
    """The rows of one ``kind``."""
    return table[table["kind"] == kind]
