"""Statistics for trustworthy comparisons: per-config summaries that keep selection apart from evidence, intervals
over seeds and images from per-image records, controlled per-axis effects, one Holm-adjusted family of verdicts,
"Δ at equal MACs" against the baselines' step front, complexity-normalised error EDFs, the noise floor, and rank
fidelity between two runs' tables (``python run_ablation.py compare results/A results/B`` reads the folders in
:mod:`ablate.report.compare`).

Every statistic comes from scipy / statsmodels; this package only decides which rows go in and what is reported.
"""

from ablate.core.lazy import lazy_exports

# Loaded on first use: a Ray worker imports ablate.analysis.selection, and nothing here needs scipy or statsmodels
_EXPORTS = {
    "Analysis": "pipeline", "AnalysisInputs": "pipeline", "analyze": "pipeline",
    "complexity_weights": "edf", "edf_counts": "edf", "error_edf": "edf", "effects": "axis_effects",
    "CHEAPER": "equal_cost", "baseline_front": "equal_cost", "cost_matched_baseline": "equal_cost",
    "Estimate": "evidence", "Evidence": "evidence",
    "RankAgreement": "fidelity", "compare_runs": "fidelity", "rung_fidelity": "fidelity",
    "NoiseFloor": "noise", "noise_floor": "noise", "SUMMARY_COLUMNS": "summary", "summarize": "summary",
    "best_candidate": "verdicts", "detectable_difference": "verdicts", "verdict_family": "verdicts",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)  # the names __getattr__ serves
