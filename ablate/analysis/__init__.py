"""Statistics for trustworthy comparisons: per-config summaries that keep selection apart from evidence, intervals
over seeds and images from per-image records, controlled per-axis effects, one Holm-adjusted family of verdicts,
"Δ at equal MACs" against the baselines' step front, complexity-normalised error EDFs, the noise floor, and rank
fidelity between two runs' tables (``python run_ablation.py compare results/A results/B`` reads the folders in
:mod:`ablate.report.compare`).

Every statistic comes from scipy / statsmodels; this package only decides which rows go in and what is reported.
"""

from ablate.analysis.edf import complexity_weights, edf_counts, error_edf
from ablate.analysis.effects import effects
from ablate.analysis.equal_cost import CHEAPER, baseline_front, cost_matched_baseline
from ablate.analysis.evidence import Estimate, Evidence
from ablate.analysis.fidelity import RankAgreement, compare_runs, rung_fidelity
from ablate.analysis.noise import NoiseFloor, noise_floor
from ablate.analysis.summary import SUMMARY_COLUMNS, summarize
from ablate.analysis.verdicts import best_candidate, detectable_difference, verdict_family

__all__ = [
    "CHEAPER", "Estimate", "Evidence", "NoiseFloor", "RankAgreement", "SUMMARY_COLUMNS",
    "baseline_front", "best_candidate", "compare_runs", "complexity_weights", "cost_matched_baseline",
    "detectable_difference", "edf_counts", "effects", "error_edf", "noise_floor", "rung_fidelity", "summarize",
    "verdict_family",
]
