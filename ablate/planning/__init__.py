"""Planning a run before anything is trained: what each design costs here and what it can detect.

``python run_ablation.py plan --space qlblock [--budget 10m] [--target 5]`` lists, for the ablation design at
several seed counts and for the factorial designs, the trainings, the projected wall time on this machine and the
detectable difference of every kind of question in the design's family (80 % power, α / m), and recommends the
cheapest design that detects ``--target`` pp within ``--budget``. Every run prints its own plan's line first and
keeps it in run.json (``plan``); its report states planned against achieved.

The noise model comes from data, never a constant: the user's earlier runs of the same recipe, macro and data (their
judged models), else the models recorded for the protocol with the package, else a short pilot (``plan`` runs one;
a run without any says the detectable difference is unknown). Per-model times come from earlier runs, else from
timing a few optimizer steps of each model here.
"""

from ablate.core.lazy import lazy_exports

# Loaded on first use: a Ray worker imports ablate.planning.timing to time a model, not the statistics of a plan
_EXPORTS = {"DesignPlan": "designs", "Shape": "designs", "NoiseModel": "noise", "Plan": "plan",
            "noise_model": "plan", "plan_line": "plan", "plan_run": "plan"}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)  # the names __getattr__ serves
