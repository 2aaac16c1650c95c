"""Complexity-normalised error EDFs of design choices (Radosavovic et al., "On Network Design Spaces…", 2019).

The error EDF of a choice is F(e) = fraction of its models with error ≤ e. Choices that differ in cost are only
comparable after each model is weighted by 1 / (its choice's histogram density of log MACs at that model), with bins
shared by all choices, so every choice carries the same (uniform) MACs distribution:
F(e) = Σ wᵢ·1[errᵢ ≤ e] / Σ wᵢ.

That only means something where every choice has models: the weighting is applied over the log-MACs range that all
choices of the axis occupy (the largest minimum to the smallest maximum), models outside it are left out, and an
axis whose overlap holds too few models per choice is not normalised at all (:func:`normalisable`). An axis that
sets the MACs itself (``width``) is never normalised: equalising its MACs would compare each width with itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ablate.analysis.axis_effects import choice_label
from ablate.analysis.summary import search_rows
from ablate.core.schema import Kind, of_kind

MIN_ROWS_PER_CHOICE = 8
COST_AXES = frozenset({"width"})  # axes that set the MACs: their EDFs are plain, never MACs-normalised


def edf_rows(trials: pd.DataFrame, metric: str = "val_top1") -> pd.DataFrame:
    """The models an EDF counts: completed candidates with finite MACs and metric, confirmation replicates left
    out (they repeat the best configs and would tilt the distribution towards them)."""
    rows = search_rows(trials)
    rows = of_kind(rows, Kind.CANDIDATE)
    macs = pd.to_numeric(rows["macs"], errors="coerce") if "macs" in rows else pd.Series(np.nan, index=rows.index)
    return rows[np.isfinite(rows[metric]) & np.isfinite(macs) & (macs > 0)]


def overlap(macs, choices) -> tuple[float, float]:
    """The MACs range every choice occupies: (largest per-choice minimum, smallest per-choice maximum)."""
    frame = pd.DataFrame({"macs": np.asarray(macs, dtype=float), "choice": np.asarray(choices)})
    by_choice = frame.groupby("choice")["macs"].agg(["min", "max"])
    return float(by_choice["min"].max()), float(by_choice["max"].min())


def normalisable(trials: pd.DataFrame, axis: str, metric: str = "val_top1",
                 min_rows: int = MIN_ROWS_PER_CHOICE) -> tuple[bool, str]:
    """Whether an axis's EDFs can be MACs-normalised, and why not when they cannot."""
    if axis in COST_AXES:
        return False, f"{axis} sets the MACs itself, so equalising them would be meaningless"
    rows = edf_rows(trials, metric).dropna(subset=[axis])
    if rows.empty:
        return False, "no models"
    choice = rows[axis].map(choice_label)
    low, high = overlap(rows["macs"], choice)
    inside = choice[(rows["macs"] >= low) & (rows["macs"] <= high)].value_counts()
    thin = [c for c in choice.unique() if inside.get(c, 0) < min_rows]
    if high <= low or thin:
        return False, (f"the MACs range every choice occupies ({low / 1e6:.3g}–{high / 1e6:.3g} M) holds fewer than "
                       f"{min_rows} models of {', '.join(map(str, thin)) or 'every choice'}")
    return True, ""


def complexity_weights(macs, choices, bins: int = 10) -> np.ndarray:
    """Per model, 1 / (density of log MACs of its choice at the model), from histograms with shared bin edges.

    Args:
        macs: MACs of each model (positive).
        choices: The choice of each model on the axis compared.
        bins: Number of histogram bins over the log-MACs range of all models.

    Returns:
        Weights normalised to sum to 1 within each choice.
    """
    log_macs = np.log(np.asarray(macs, dtype=float))
    choices = np.asarray(choices)
    edges = np.histogram_bin_edges(log_macs, bins=bins)
    weights = np.empty_like(log_macs)
    for choice in pd.unique(choices):
        mask = choices == choice
        density, _ = np.histogram(log_macs[mask], bins=edges, density=True)
        index = np.clip(np.searchsorted(edges, log_macs[mask], side="right") - 1, 0, len(density) - 1)
        w = 1.0 / density[index]
        weights[mask] = w / w.sum()
    return weights


def error_edf(trials: pd.DataFrame, axis: str, metric: str = "val_top1", bins: int = 10,
              normalise: bool = True) -> pd.DataFrame:
    """The (complexity-normalised) error EDF of every choice of one axis.

    Args:
        trials: The trials table (see :func:`edf_rows` for the rows used).
        axis: The axis column whose choices are compared.
        metric: Accuracy in percent; the error is ``100 − metric``.
        bins: Histogram bins of log MACs for the weights.
        normalise: Keep the models inside the log-MACs range every choice occupies and weight them by
            :func:`complexity_weights`; False gives the plain EDF of every model (equal weights). Check
            :func:`normalisable` first.

    Returns:
        One row per model sorted by choice and error: ``choice``, ``error`` (%), ``macs``, ``weight`` (sums to 1
        per choice) and ``edf`` = Σ weights of the choice's models with error ≤ this error.
    """
    rows = edf_rows(trials, metric).dropna(subset=[axis])
    if normalise and len(rows):
        low, high = overlap(rows["macs"], rows[axis].map(choice_label))
        rows = rows[(rows["macs"] >= low) & (rows["macs"] <= high)]
    choice = rows[axis].map(choice_label).to_numpy()
    macs = pd.to_numeric(rows["macs"]).to_numpy(dtype=float)
    if normalise and len(rows):
        weight = complexity_weights(macs, choice, bins)
    else:
        counts = pd.Series(choice).value_counts()
        weight = np.array([1.0 / counts[c] for c in choice])
    frame = pd.DataFrame({"choice": choice, "error": 100.0 - rows[metric].to_numpy(dtype=float), "macs": macs,
                          "weight": weight}).sort_values(["choice", "error"], kind="stable")
    # F at each error: cumulative weight, ties taking the weight of all models at that error
    cumulative = frame.groupby("choice")["weight"].cumsum()
    frame["edf"] = cumulative.groupby([frame["choice"], frame["error"]]).transform("max")
    return frame.reset_index(drop=True)


def edf_counts(trials: pd.DataFrame, axis: str, metric: str = "val_top1") -> pd.Series:
    """Rows per choice that an EDF of ``axis`` would count (for the "at least 8 per choice" rule)."""
    rows = edf_rows(trials, metric).dropna(subset=[axis])
    return rows[axis].map(choice_label).value_counts()
