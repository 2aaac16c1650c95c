"""``python run_ablation.py compare results/A results/B``: do two runs rank their shared configs the same way?

Prints Kendall τ (with a bootstrap 95 % CI) and Spearman ρ (with n and p-values) of the shared configs' mean val
top-1 — over every shared config and over the candidates alone (baselines differ a lot and can carry τ by
themselves) — and the top-k overlap, and writes a scatter figure and the paired table into ``--out`` (default:
``compare-A-vs-B/`` beside run A).
Bad input (a missing run, fewer than 3 shared configs) is one line on stderr and exit code 2.
"""

from __future__ import annotations

import math
from pathlib import Path

from ablate.analysis.fidelity import MIN_SHARED, RankAgreement, compare_runs
from ablate.core.errors import UsageError
from ablate.core.files import write_atomic
from ablate.core.schema import Kind


def compare(run_a: str | Path, run_b: str | Path, out: str | Path | None = None,
            k: int = 5) -> tuple[RankAgreement, RankAgreement, Path]:
    """Compare two run folders; write ``scatter.png`` and ``shared.csv``; return the agreement over every shared
    config, the agreement over the shared candidates, and the folder.

    Raises:
        UsageError: a run folder without a results table, or fewer than 3 shared completed configs.
    """
    from ablate.results import load, run_path

    path_a, path_b = run_path(run_a), run_path(run_b)
    if k < 1:
        raise UsageError(f"--top-k must be at least 1, got {k}")
    trials_a, trials_b = load(path_a), load(path_b)
    agreement = compare_runs(trials_a, trials_b, k=k)
    candidates = compare_runs(trials_a, trials_b, k=k, kind=Kind.CANDIDATE)
    if agreement.n < MIN_SHARED:
        raise UsageError(f"{path_a.name} and {path_b.name} share {agreement.n} completed config"
                         f"{'' if agreement.n == 1 else 's'}; a rank correlation needs at least {MIN_SHARED}")
    folder = Path(out) if out else path_a.resolve().parent / f"compare-{path_a.name}-vs-{path_b.name}"
    folder.mkdir(parents=True, exist_ok=True)
    table = agreement.pairs.rename(columns={"a": f"val_top1_{path_a.name}", "b": f"val_top1_{path_b.name}"})
    write_atomic(folder / "shared.csv", lambda tmp: table.rename_axis("name").to_csv(tmp))
    _scatter(agreement, path_a.name, path_b.name, folder / "scatter.png")
    return agreement, candidates, folder


def _stat(value: float, p: float) -> str:
    if not math.isfinite(value):
        return "undefined (fewer than 3 shared, or one run gives them all the same val top-1)"
    return f"{value:+.3f} (p = {p:.3g})"


def _tau_line(agreement: RankAgreement, what: str) -> str:
    ci = (f", bootstrap 95 % CI [{agreement.tau_ci_low:+.2f}, {agreement.tau_ci_high:+.2f}]"
          if math.isfinite(agreement.tau_ci_low) and math.isfinite(agreement.tau_ci_high) else "")
    return f"Kendall τ ({what}) = {_stat(agreement.kendall_tau, agreement.kendall_p)}{ci}, n = {agreement.n}"


def report_lines(agreement: RankAgreement, name_a: str, name_b: str,
                 candidates: RankAgreement | None = None) -> list[str]:
    """What ``compare`` prints: τ with its bootstrap CI over all shared configs and over the candidates alone,
    ρ with its p-value, then the top-k overlap."""
    lines = [f"{name_a} vs {name_b}: {agreement.n} shared completed configs, mean val top-1 over seeds",
             _tau_line(agreement, "all configs")]
    if candidates is not None:
        lines.append(_tau_line(candidates, "candidates only"))
    return lines + [f"Spearman ρ (all configs) = {_stat(agreement.spearman_rho, agreement.spearman_p)}, "
                    f"n = {agreement.n}",
                    f"top-{agreement.top_k} overlap: {agreement.top_k_overlap} of {agreement.top_k}"]


def _scatter(agreement: RankAgreement, name_a: str, name_b: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    from ablate.core.schema import BASELINE_NAMES

    data = agreement.pairs.assign(kind=[Kind.BASELINE if n in BASELINE_NAMES else Kind.CANDIDATE
                                        for n in agreement.pairs.index])
    with sns.axes_style("whitegrid"):
        fig, ax = plt.subplots(figsize=(6.0, 5.0), dpi=110)
        sns.scatterplot(data=data, x="a", y="b", hue="kind", style="kind", s=60, ax=ax)
        if len(data) <= 25:
            for name, row in data.iterrows():
                ax.annotate(str(name), (row["a"], row["b"]), xytext=(4, 4), textcoords="offset points", fontsize=7)
        ax.set_xlabel(f"{name_a}: val top-1 (%)")
        ax.set_ylabel(f"{name_b}: val top-1 (%)")
        ax.set_title(f"Kendall τ {agreement.kendall_tau:+.2f}, Spearman ρ {agreement.spearman_rho:+.2f}, "
                     f"n = {agreement.n}", fontsize=9)
        fig.tight_layout()
        write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))
        plt.close(fig)
