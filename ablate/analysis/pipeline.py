"""One analysis pass over a run's tables: the per-config summary, the per-axis effects and the Holm family of
verdicts, computed together from the same rows and saved beside the tables (``summary.parquet`` / ``.csv``,
``effects.parquet``, ``verdicts.parquet``, stamped in ``analysis.json``).

Every reader (the report, the run's closing lines, ``ablate.results.load(run, summary=True)``, a pooled report)
reads that one result; it is computed again only when the tables it was computed from have changed (a run that
filed more models, a pooled folder), or the analysis code has. A run saves it once, when its last model is filed;
filing a model rewrites the tables but no longer analyses them.
"""

from __future__ import annotations

import errno
import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from ablate.analysis.axis_effects import EFFECT_COLUMNS, effects
from ablate.analysis.evidence import Evidence
from ablate.analysis.summary import summarize
from ablate.analysis.verdicts import verdict_family
from ablate.core.errors import UsageError
from ablate.core.files import read_json, read_table, write_atomic, write_json
from ablate.core.schema import EVIDENCE_SPLIT

ANALYSIS_FILES = {"summary": "summary.parquet", "effects": "effects.parquet", "verdicts": "verdicts.parquet"}
STAMP_FILE = "analysis.json"  # written last: the tables above are the analysis of what its stamp names


@dataclass(frozen=True)
class AnalysisInputs:
    """What decides the analysis besides the tables, as the run folder's run.json states it.

    Attributes:
        axes: The summary's axis columns.
        design_axes: The axes the design varied: the factors of the per-axis effects.
        reference: An ablation's reference point (axis → value): the verdicts are then its ablation rows.
        choice_orders: Each axis's choices in the space file's order (its first is the effects' reference choice).
        stand_ins: Baselines whose network is a point of the space (they stand for it in the effects).
    """

    axes: tuple[str, ...]
    design_axes: tuple[str, ...] = ()
    reference: dict[str, Any] | None = None
    choice_orders: dict[str, list] = field(default_factory=dict)
    stand_ins: tuple[str, ...] = ()


@dataclass(frozen=True)
class Analysis:
    """A run's analysis: one row per config, the per-axis effects, and the report's family of verdicts."""

    summary: pd.DataFrame
    effects: pd.DataFrame
    verdicts: pd.DataFrame


def analyze(trials: pd.DataFrame, evidence: Evidence | pd.DataFrame | None, inputs: AnalysisInputs) -> Analysis:
    """The summary, effects and verdicts of a run's rows, from the same rows and the same per-image evidence.

    Args:
        trials: The run's trials table (normalised, as ``ablate.report.load_run`` reads it).
        evidence: The test split's per-image evidence, or the predictions table it is built from.
        inputs: The axes, design and reference of the run (:class:`AnalysisInputs`).

    Returns:
        The :class:`Analysis`; nothing is written (see :func:`save_analysis`).
    """
    if not isinstance(evidence, Evidence):
        evidence = Evidence(evidence, EVIDENCE_SPLIT)
    summary = summarize(trials, evidence, axes=list(inputs.axes))
    if inputs.reference is not None:  # an ablation answers per variant: no factorial effects to fit
        effect_table = pd.DataFrame(columns=EFFECT_COLUMNS).assign(estimable=pd.Series(dtype=bool))
    else:
        effect_table = effects(trials, list(inputs.design_axes), metric=f"{EVIDENCE_SPLIT}_top1",
                               reference=inputs.choice_orders, stand_ins=list(inputs.stand_ins), evidence=evidence)
    return Analysis(summary, effect_table, verdict_family(summary, effect_table, evidence, reference=inputs.reference))


def analysis_of_tables(run_dir: Path, trials: pd.DataFrame, predictions: pd.DataFrame | None,
                       inputs: AnalysisInputs, evidence: Evidence | None = None) -> Analysis:
    """The analysis of a run folder's tables as read: the one saved in ``run_dir`` when it is theirs, else computed
    now and saved there (a folder this user may read but not write is analysed, not saved).

    Args:
        run_dir: The run folder; one that does not exist (a run held in memory) is analysed, nothing is read or saved.
        trials: Its trials table, normalised.
        predictions: Its predictions table, None when it has none.
        inputs: What run.json says of the analysis (:class:`AnalysisInputs`).
        evidence: The test split's evidence when the caller has built it from ``predictions`` already.
    """
    if not run_dir.is_dir():
        return analyze(trials, evidence if evidence is not None else predictions, inputs)
    stamp = analysis_stamp(trials, predictions, inputs)
    found = saved_analysis(run_dir, stamp)
    if found is not None:
        return found
    result = analyze(trials, evidence if evidence is not None else predictions, inputs)
    try:
        save_analysis(run_dir, result, stamp)
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
    return result


def analysis_stamp(trials: pd.DataFrame, predictions: pd.DataFrame | None, inputs: AnalysisInputs) -> str:
    """What an analysis depends on, hashed: the trials and predictions it reads (their contents, as read: a table
    rewritten after they were read is a new stamp), the inputs and the analysis code."""
    digest = hashlib.sha256(_code_version().encode())
    digest.update(json.dumps(asdict(inputs), sort_keys=True, default=str).encode())
    for frame in (trials, predictions):
        empty = frame is None or frame.empty
        digest.update(b"-" if empty else pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        digest.update(b"|" if empty else ",".join(map(str, frame.columns)).encode())
    return digest.hexdigest()


def save_analysis(run_dir: Path, analysis: Analysis, stamp: str) -> None:
    """Write the analysis beside the tables, each file atomically, the stamp last."""
    for name, file in ANALYSIS_FILES.items():
        frame = getattr(analysis, name)
        write_atomic(run_dir / file, lambda tmp, frame=frame: frame.to_parquet(tmp, index=False))
    write_atomic(run_dir / "summary.csv", lambda tmp: analysis.summary.to_csv(tmp, index=False))
    write_json(run_dir / STAMP_FILE, {"stamp": stamp, "files": list(ANALYSIS_FILES.values())}, indent=2)


def saved_analysis(run_dir: Path, stamp: str) -> Analysis | None:
    """The analysis saved in ``run_dir`` if it is the analysis of what ``stamp`` names; None otherwise."""
    if not (run_dir / STAMP_FILE).is_file():
        return None
    try:
        if read_json(run_dir / STAMP_FILE).get("stamp") != stamp:
            return None
        return Analysis(**{name: read_table(run_dir / file) for name, file in ANALYSIS_FILES.items()})
    except (UsageError, OSError):  # a file lost or damaged since: computed again, never half trusted
        return None


@lru_cache(maxsize=1)
def _code_version() -> str:
    """The analysis package's source, hashed: a new version of the statistics analyses the tables again."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()
