"""What a search can optimise: objective names, the result columns they read and their directions."""

from __future__ import annotations

from dataclasses import dataclass

from ablate.core.errors import UsageError


@dataclass(frozen=True)
class Metric:
    """An objective the search can optimise: the trial-result column it reads and its usual direction."""

    column: str
    direction: str
    description: str


METRICS: dict[str, Metric] = {
    "top1": Metric("val_top1", "maximize", "validation top-1 (%)"),
    "macs": Metric("macs", "minimize", "multiply-accumulates per image"),
    "params": Metric("params", "minimize", "parameter count"),
    "latency": Metric("trial_latency_ms", "minimize",
                      "batch-1 latency (ms) measured inside each trial, on its own resources, before it trains"),
}


@dataclass(frozen=True)
class Objective:
    metric: str  # one of METRICS
    direction: str  # "maximize" | "minimize"

    @property
    def column(self) -> str:
        return METRICS[self.metric].column


DEFAULT_OBJECTIVES = (Objective("top1", "maximize"),)


def objectives_problem(names: list[str]) -> str | None:
    """What is wrong with a list of objective names, or None: known metrics, accuracy first, no repeats."""
    unknown = [n for n in names if n not in METRICS]
    if not names or unknown:
        what = ", ".join(repr(n) for n in unknown) or "(none given)"
        return f"unknown objective metric {what}: choose from {', '.join(METRICS)} (e.g. top1,macs)"
    if names[0] != "top1":
        return "the first objective must be top1 (accuracy); add costs after it, e.g. top1,macs"
    if len(set(names)) != len(names):
        return f"objective listed twice in {','.join(names)}"
    return None


def parse_objectives(text: str) -> tuple[Objective, ...]:
    """``top1,macs`` → (top1 maximize, macs minimize); a one-line UsageError for unknown names."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    problem = objectives_problem(names)
    if problem:
        raise UsageError(problem)
    return tuple(Objective(n, METRICS[n].direction) for n in names)
