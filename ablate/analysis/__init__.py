"""Statistics for trustworthy comparisons (DESIGN.md §7): per-config summaries with CIs, controlled per-axis
effects, complexity-normalised error EDFs, "Δ at equal MACs", the noise floor, and rank fidelity between runs.

Every statistic comes from scipy / statsmodels; this package only decides which rows go in and what is reported.
``python run_ablation.py compare results/A results/B`` is :func:`ablate.analysis.compare.main`.
"""

from ablate.analysis.edf import complexity_weights, edf_counts, error_edf
from ablate.analysis.effects import effects
from ablate.analysis.equal_cost import baseline_front, delta_at_equal_macs
from ablate.analysis.fidelity import RankAgreement, compare_runs, rung_fidelity
from ablate.analysis.intervals import Interval, t_interval
from ablate.analysis.noise import NoiseFloor, noise_floor
from ablate.analysis.summary import SUMMARY_COLUMNS, paired_delta, summarize

__all__ = [
    "Interval", "NoiseFloor", "RankAgreement", "SUMMARY_COLUMNS", "baseline_front", "compare_runs",
    "complexity_weights", "delta_at_equal_macs", "edf_counts", "effects", "error_edf", "noise_floor",
    "paired_delta", "rung_fidelity", "summarize", "t_interval",
]
