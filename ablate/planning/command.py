"""``run_ablation.py plan`` (flags: :mod:`ablate.cli.parser`): every run flag, plus ``--budget`` and ``--target``;
a table of designs and the cheapest one that detects the target within the budget."""

from __future__ import annotations

import math
import re

from ablate.core.errors import UsageError

SEED_COUNTS = (3, 4, 5, 6, 8, 10)
FACTORIAL = ("balanced", "grid")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600}


def parse_budget(text: str) -> float:
    """Seconds of a budget written ``90s``, ``10m`` or ``3h`` (a bare number is minutes).

    Raises:
        UsageError: Anything else, in one line.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h)?\s*", str(text))
    if not match or float(match[1]) <= 0:
        raise UsageError(f"--budget {text!r}: write a positive duration such as 90s, 10m or 3h")
    return float(match[1]) * _UNITS[match[2] or "m"]


def plan_lines(settings, results_dir, budget: float, target: float, prog: str = "python run_ablation.py") -> list[str]:
    """The plan of ``settings`` (its space resolved) against the alternatives, as text; a short pilot first when
    neither earlier runs nor a shipped record of the protocol say how noisy its models are.

    Args:
        settings: The run's settings (:func:`resolved`).
        results_dir: Where earlier runs (and pilots) are looked for.
        budget: Seconds the run may take here (:func:`parse_budget`).
        target: The difference (pp) its main questions must detect with 80 % power.
        prog: The command as the user typed it (``python run_ablation.py``), for the recommended command.

    Raises:
        UsageError: ``target`` is not a positive number.
    """
    from ablate.planning import plan_run
    from ablate.planning.pilot import run_pilot

    if not target > 0:
        raise UsageError(f"--target must be a positive number of percentage points, got {target}")
    plan = plan_run(settings, results_dir, designs=FACTORIAL, seed_counts=SEED_COUNTS)
    if plan is None:
        run_pilot(pilot_configs(settings), settings.protocol, settings.macro, _splits(settings), results_dir,
                  settings.data_dir, workers=2)
        plan = plan_run(settings, results_dir, designs=FACTORIAL, seed_counts=SEED_COUNTS)
    return report_lines(plan, settings, budget, target, prog)


def resolved(settings):
    """The settings with the space resolved for the run's data (widths matched to equal cost, where asked)."""
    from dataclasses import replace

    from ablate.data import load_protocol_data

    data = load_protocol_data(settings.protocol, data_dir=settings.data_dir, device="cpu", seed=settings.seed)
    return replace(settings, space=settings.space.resolved(settings.macro, data.num_classes, data.input_size))


def _splits(settings) -> dict[str, int]:
    from ablate.data import load_protocol_data
    from ablate.data.splits import SPLITS

    data = load_protocol_data(settings.protocol, data_dir=settings.data_dir, device="cpu", seed=settings.seed)
    return {split: data.size(split) for split in SPLITS}


def pilot_configs(settings) -> list:
    """What a pilot trains: the design's first two configs (an ablation's reference and a variant) and the first
    baseline, so that both kinds of comparison — between the space's configs, and against a baseline — are sampled."""
    from ablate.models import BASELINE_BY_TIMM_NAME
    from ablate.space.design import design_points

    points = design_points(settings.space, settings.design, settings.trials, settings.seed)[:2]
    baselines = [BASELINE_BY_TIMM_NAME[t].block for t in settings.space.baselines[:1]]
    return [settings.space.config(p) for p in points] + baselines


def report_lines(plan, settings, budget: float, target: float, prog: str = "python run_ablation.py") -> list[str]:
    """The plan as text: the designs, each with its trainings, time and detectable differences; the choice."""
    rows = [plan.chosen, *plan.alternatives]
    lines = [f"plan for space {settings.space.name} on {settings.protocol.name} (macro {settings.macro}), "
             f"{plan.chosen.shape.baselines} baselines; noise from {plan.noise.source}; times: {plan.time_source}",
             f"{'design':34s} {'trainings':>9s} {'≈ time':>9s}   detectable with 80 % power (α = 0.05 / family)"]
    for row in rows:
        detect = "; ".join(f"{k} {v:.1f} pp" for k, v in row.detectable.items() if math.isfinite(v)) or "—"
        mark = " (this run)" if row is plan.chosen else ""
        lines.append(f"{row.label + mark:34s} {row.trainings:9d} {row.seconds / 60:7.1f} m   {detect} "
                     f"(family {row.family})")
    fitting = [r for r in rows if r.seconds <= budget and math.isfinite(r.primary) and r.primary <= target]
    if fitting:
        best = min(fitting, key=lambda r: r.seconds)
        lines.append(f"recommended: {best.label} — detects {best.primary:.1f} pp in ≈ {best.seconds / 60:.1f} min "
                     f"(target {target:g} pp, budget {budget / 60:g} min): {_command(best, settings, prog)}")
    else:
        closest = min(rows, key=lambda r: (r.primary if math.isfinite(r.primary) else math.inf, r.seconds))
        lines.append(f"no design detects {target:g} pp within {budget / 60:g} min here; the closest: "
                     f"{closest.label}, {closest.primary:.1f} pp in ≈ {closest.seconds / 60:.1f} min — raise --budget, "
                     "or accept a larger --target")
    lines += [f"note: {n}" for n in dict.fromkeys(n for r in rows for n in r.notes)]
    return lines


def _command(plan, settings, prog: str) -> str:
    shape = plan.shape
    flags = f"--design {shape.design} --seeds {shape.seeds}"
    if shape.design not in ("ablation", "grid"):
        flags += f" --trials {shape.configs}"
    return f"{prog} --space {settings.space.name} --protocol {settings.protocol.name} {flags}"

