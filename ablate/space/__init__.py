"""Block search spaces: YAML files in ``search_spaces/`` that name axes, choices, macros, baselines and objectives.

A space is validated as it loads; a bad file gives one line with the file, the line and what is wrong.

Besides ``axes`` (each a list of ``choices``), ``fixed``, ``macro``, ``baselines`` and ``objectives``, a file may say
``design: balanced | search | grid`` (``DESIGNS``; the run's default ``--design``, ``search`` when absent) and may
write the width as ``width: {match: macs}``: the width is then not sampled but solved per (nonlinearity, spatial)
pair so that every network costs ResNet50's MACs (±5 %); ``SearchSpace.resolved(macro, num_classes, input_size)``
solves it (``ablate.space.isomacs``) and only the resolved copy can build configs.
Sampling is define-by-run on an ``optuna.Trial`` with exactly one parameter name per axis, so a categorical
parameter always keeps the same choices under its name (Optuna requires that across trials).
"""


from ablate.core.defaults import DESIGNS
from ablate.space.loader import AXIS_KINDS, DEFAULT_SPACE, SPACES_DIR, list_spaces, load_space
from ablate.space.objectives import DEFAULT_OBJECTIVES, METRICS, Metric, Objective, objectives_problem, parse_objectives
from ablate.space.searchspace import DEFAULT_DESIGN, WIDTH_MATCHES, Axis, SearchSpace, WidthMatch, config_hash

__all__ = [
    "AXIS_KINDS", "DEFAULT_DESIGN", "DEFAULT_OBJECTIVES", "DEFAULT_SPACE", "DESIGNS", "METRICS", "SPACES_DIR",
    "WIDTH_MATCHES", "Axis", "Metric", "Objective", "SearchSpace", "WidthMatch", "config_hash", "list_spaces",
    "load_space", "objectives_problem", "parse_objectives",
]
