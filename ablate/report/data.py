"""The run folder as the report sees it: loading, validation, the shared vocabulary and number formatting.

Every later step (tables, figures, text) takes a ``Run`` and can trust its columns, so only this module has to be
tolerant of partial tables and a missing or incomplete run.json.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ablate.core.errors import UsageError
from ablate.core.files import read_json, read_table
from ablate.core.pareto import pareto_mask
from ablate.core.schema import (
    EVIDENCE_SPLIT,
    EvidenceKind,
    Kind,
    Status,
    completed,
    of_kind,
)
from ablate.results import analysis_inputs, detect_axes, normalise_trials
from ablate.results import varying_axes as results_varying_axes

COST_LABELS = {"macs": "MACs", "latency_ms": "latency", "params": "params", "elementwise_ops": "element-wise ops"}
URL = re.compile(r"(?:https?:)?//\S+|www\.\S+")
MISSING = "—"


@dataclass(frozen=True)
class Run:
    """One run folder, loaded and normalised so the rest of the module can trust its columns."""

    directory: Path
    trials: pd.DataFrame
    curves: pd.DataFrame
    meta: dict
    axes: tuple[str, ...]
    cost: str
    predictions: pd.DataFrame | None = None

    @property
    def completed(self) -> pd.DataFrame:
        return completed(self.trials)

    @property
    def candidates(self) -> pd.DataFrame:
        done = self.completed
        return of_kind(done, Kind.CANDIDATE)

    def baseline(self, name: str) -> pd.Series | None:
        rows = self.completed[(self.completed["kind"] == Kind.BASELINE) & (self.completed["name"] == name)]
        return None if rows.empty else rows.iloc[0]

    @cached_property
    def evidence(self):
        """The test split's per-image evidence (:class:`ablate.analysis.Evidence`): what every verdict pairs."""
        from ablate.analysis import Evidence

        return Evidence(self.predictions, EVIDENCE_SPLIT)

    @cached_property
    def analysis_inputs(self):
        """What the analysis takes from run.json (:func:`ablate.results.analysis_inputs`)."""
        return analysis_inputs(self.trials, self.meta)

    @cached_property
    def analysis(self):
        """The run's summary, effects and verdicts (:func:`ablate.analysis.analyze`): as saved beside the tables when
        it is the analysis of these tables, else computed now and saved there
        (:func:`ablate.analysis.pipeline.analysis_of_tables`)."""
        from ablate.analysis.pipeline import analysis_of_tables

        return analysis_of_tables(self.directory, self.trials, self.predictions, self.analysis_inputs, self.evidence)

    @property
    def summary(self) -> pd.DataFrame:
        """One row per config: selection numbers, evidence top-1 with intervals, paired Δs
        (:func:`ablate.analysis.summarize`)."""
        return self.analysis.summary

    @cached_property
    def front(self) -> pd.Series:
        """The report's one Pareto front, on :attr:`summary`'s index: max evidence top-1 (:data:`EVIDENCE_SPLIT`) vs
        min the run's cost. The leaderboard's ★, the findings and the figures all use it (:attr:`front_text`)."""
        return pareto_mask(self.summary, "test_top1_mean", self.cost)

    @property
    def front_text(self) -> str:
        """The front's definition in words."""
        return f"max {EVIDENCE_SPLIT} top-1 (the evidence mean) vs min {COST_LABELS[self.cost]}"

    @property
    def verdicts(self) -> pd.DataFrame:
        """The report's family of verdict-bearing comparisons, Holm-adjusted
        (:func:`ablate.analysis.verdict_family`)."""
        return self.analysis.verdicts

    @property
    def reference(self) -> dict | None:
        """An ablation design's reference point (axis → value) from run.json; None for the other designs."""
        return self.analysis_inputs.reference

    @property
    def choice_orders(self) -> dict[str, list]:
        """Each axis's choices in the space file's order (its first choice is the effects' reference)."""
        return self.analysis_inputs.choice_orders

    @property
    def effects(self) -> pd.DataFrame:
        """Per-axis main effects on test top-1 from matched pairs of run-seed models (:func:`ablate.analysis.effects`;
        empty for an ablation, which answers per variant)."""
        return self.analysis.effects

    @cached_property
    def shares(self) -> pd.DataFrame:
        """Which axis matters: each axis's and pair of axes' share of the configs' variance, with bootstrap
        intervals over the test images (:func:`ablate.analysis.decomposition.variance_shares`); empty for an
        ablation or when the design leaves no residual."""
        from ablate.analysis.decomposition import SHARE_COLUMNS, variance_shares

        axes = self.design_axes
        candidates = of_kind(self.summary, Kind.CANDIDATE)
        hits = {name: self.evidence.tables[(name, EvidenceKind.RUN_SEED)][0] for name in candidates["name"]
                if self.evidence.has(name, EvidenceKind.RUN_SEED)}
        if self.reference is not None or len(axes) < 2 or len(hits) < 4:
            return pd.DataFrame(columns=SHARE_COLUMNS)
        return variance_shares(candidates, hits, axes)

    @cached_property
    def aliases(self) -> dict[str, list[str]]:
        """Each config reported under one name for several (twins: one network), with its other names: those the
        design did not train (run.json ``aliases``) and those trained under both names (merged in the tables)."""
        names: dict[str, list[str]] = {}
        recorded = self.meta.get("aliases")
        for alias, name in (recorded.items() if isinstance(recorded, dict) else ()):
            names.setdefault(str(name), []).append(str(alias))
        for name, merged in zip(self.summary["name"], self.summary["aliases"].fillna("")):
            names.setdefault(name, []).extend(a for a in str(merged).split(", ") if a)
        return {name: sorted(set(others)) for name, others in names.items() if others}

    @property
    def stand_ins(self) -> list[str]:
        """Baselines that build a point of the space (run.json ``aliases``): their run-seed models stand for that
        point in the per-axis effects, since the design did not train it again as a candidate."""
        return list(self.analysis_inputs.stand_ins)

    @property
    def design_axes(self) -> list[str]:
        """The varying axes the run sampled: run.json's declared space axes when it lists them (a width solved to
        match MACs is then left out: it follows the other axes and is no factor of its own), else every varying
        axis."""
        return list(self.analysis_inputs.design_axes)

    def split_size(self, split: str = EVIDENCE_SPLIT) -> int | None:
        """A data split's size from run.json ``data``; None when the run does not say."""
        data = self.meta.get("data")
        try:
            return int(data[split]) if isinstance(data, dict) and data.get(split) else None
        except (TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Figure:
    """A figure made or skipped; ``path`` is None when skipped and the caption then says why. ``data`` is what the
    figure drew (one row per marker, line point or bar), so its caption's numbers can be checked against it."""

    title: str
    caption: str
    path: Path | None = None
    data: pd.DataFrame | None = field(default=None, compare=False, repr=False)


def load_run(run_dir: str | Path) -> Run:
    """Read and validate a run folder; every user mistake becomes a one-line UsageError."""
    directory = Path(run_dir)
    if not directory.is_dir():
        raise UsageError(f"run folder {directory} does not exist; pass a results/<run> folder written by a run")
    table = directory / "trials.parquet"
    if not table.is_file():
        raise UsageError(f"{table} not found; run an ablation first (python run_ablation.py) "
                         "or pass its results folder")
    trials = normalise_trials(read_table(table))
    if (trials["status"] == Status.COMPLETED).sum() == 0:
        raise UsageError(f"nothing to report in {directory}: no completed trials in trials.parquet "
                         f"({len(trials)} rows); let a run finish at least one trial")
    meta = read_json(directory / "run.json")  # optional, but a damaged one is an error, never silently ignored
    curves = _read_optional(directory / "curves.parquet")
    predictions = _read_optional(directory / "predictions.parquet")
    return Run(directory, trials, curves, meta, detect_axes(trials, meta), _cost_metric(meta),
               predictions if len(predictions) else None)


def _read_optional(path: Path) -> pd.DataFrame:
    """curves.parquet and predictions.parquet are optional: the learning-curve figure is skipped without the first,
    intervals and verdicts without the second; a damaged one is a one-line UsageError naming it."""
    return read_table(path) if path.is_file() else pd.DataFrame()


def _cost_metric(meta: dict) -> str:
    """The minimised objective that pairs with accuracy for the Pareto front; MACs unless run.json names another."""
    for obj in meta.get("objectives") or ():
        if obj.get("column") in COST_LABELS and obj.get("direction") == "minimize":
            return obj["column"]
    return "macs"


def fmt_ci(low, high, spec: str = "{:.2f}") -> str:
    """A 95 % interval as ``[low, high]``; a dash when there is none (n < 2)."""
    if not all(isinstance(v, (int, float, np.floating)) and math.isfinite(v) for v in (low, high)):
        return MISSING
    return f"[{spec.format(low)}, {spec.format(high)}]"


def fmt(value, spec: str = "{:.2f}", scale: float = 1.0) -> str:
    """One number for display; missing or non-finite values show as a dash rather than 'nan'."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value) if value not in (None, "") else MISSING
    if not math.isfinite(number):
        return MISSING
    text = spec.format(number / scale)
    negative_zero = text.startswith("-") and not any(digit in text for digit in "123456789")  # "-0.00"
    return spec.format(0.0) if negative_zero else text


def cost_unit(metric: str, values: pd.Series) -> tuple[float, str]:
    """Scale and unit label for a cost column, so headers and axes always say what the number means."""
    if metric == "latency_ms":
        return 1.0, "ms"
    return (1e9, "G") if metric == "macs" and values.max(skipna=True) >= 1e9 else (1e6, "M")


_MARKDOWN_SPECIAL = re.compile(r"([\\`*|])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md_escape(text) -> str:
    """Free text (data, not the report's own sentences) made literal in Markdown: backslashes, backticks,
    asterisks, pipes and underscores that could start or end emphasis are backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(lambda m: "\\" + m.group(0), str(text))


def strip_urls(text: str) -> str:
    """Drop links from free text: the HTML report must name no URL at all."""
    return re.sub(r"\s{2,}", " ", URL.sub("", str(text))).strip(" ;,")


def varying_axes(run: Run) -> list[str]:
    """Axes with at least two choices among completed candidates; a single-valued axis says nothing."""
    return results_varying_axes(run.trials, run.axes)
