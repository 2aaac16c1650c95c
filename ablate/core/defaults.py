"""A run's defaults and the names of its choices, in one place: the command line, ``RunSettings`` (the Python API)
and ``--resume`` of a run whose run.json lacks a key all take them from here. Plain values only, so that the command
line's ``--help`` lists the choices without importing torch."""

TRIALS = 12  # candidate configs of the design (or the search)
CONFIRM = 3  # the best candidates retrained under fresh seeds
SEEDS = 5  # fresh training seeds per confirmed candidate and per baseline: each config's seed variance is its own
# (ablate.analysis.evidence), on S − 1 degrees of freedom, so 3 seeds leave comparisons that detect only large
# differences (≈ 7 pp on digits at 3, ≈ 4–5 pp at 5)

DESIGNS = ("ablation", "balanced", "search", "grid")  # which configs a run trains: ablate.space.design, --design
SAMPLERS = ("tpe", "nsga2", "grid", "random")  # Optuna samplers by name: ablate.tune.search.make_sampler, --sampler
SCHEDULERS = ("asha", "none")  # early stopping of the search's weak candidates: ablate.tune.run, --scheduler
