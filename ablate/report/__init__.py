"""Generated comparison report for one run folder: ``report.md``, a self-contained ``report.html`` and figures.

Input is the results-table contract of docs/ARCHITECTURE.md (``trials.parquet``, optional ``curves.parquet``,
``run.json``). Usage: ``python -m ablate report results/<run>`` (or ``python run_ablation.py report``); the CLI calls
:func:`build_report`.
Pipeline: ``data`` (load, validate; the per-config summary and the matched-pair effects from ``ablate.analysis``) →
``tables`` (the answers first) / ``figures`` (colours from ``style``) / ``text`` (header) / ``findings`` (note,
verdicts, findings) → ``render`` (one Markdown text; the HTML is it rendered by markdown-it-py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ablate.core.files import write_text
from ablate.core.pareto import pareto_mask
from ablate.report.data import Run, load_run
from ablate.report.figures import make_figures
from ablate.report.render import build_document, render_html, render_markdown

__all__ = ["ReportOutputs", "Run", "build_report", "load_run", "pareto_mask"]


@dataclass(frozen=True)
class ReportOutputs:
    """Where the report landed: the two documents and every figure written."""

    markdown: Path
    html: Path
    figures: tuple[Path, ...]


def build_report(run_dir: str | Path) -> ReportOutputs:
    """Build a run's comparison report: ``report.md``, a self-contained ``report.html`` and ``figures/*.png``.

    Args:
        run_dir: A run folder holding ``trials.parquet`` (a running run's too; its header then says so).

    Returns:
        Where the documents and figures landed.

    Raises:
        UsageError: The folder is missing, has no table, or no completed row to report.

    Example:
        >>> build_report("results/qlblock-digits-20261126-120000").html  # doctest: +SKIP
    """
    run = load_run(run_dir)
    figures = make_figures(run, run.directory / "figures")
    doc = build_document(run, figures)
    md_path, html_path = run.directory / "report.md", run.directory / "report.html"
    markdown = render_markdown(doc, run.directory)
    write_text(md_path, markdown)
    write_text(html_path, render_html(markdown, run.directory, f"Ablation report: {run.directory.resolve().name}"))
    return ReportOutputs(md_path, html_path, tuple(f.path for f in figures if f.path is not None))

