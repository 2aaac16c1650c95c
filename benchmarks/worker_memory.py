"""Where a Ray worker's memory goes while it trains one digits model, stage by stage, in a fresh process.

    python benchmarks/worker_memory.py [--model multiply-dwconv-w4] [--path job|trial] [--ray] [--why]

A fresh Python process (or, with ``--ray``, a real Ray task on a local Ray) does what a worker does, through the
run's own code: it imports the worker's modules (``ablate.tune.jobs``, whose ``train_job`` Ray runs for a baseline,
a confirmation or an ablation model; with ``--path trial``, ``ablate.tune.trainables``, whose
``candidate_trainable`` Tune runs for a search trial), receives the run's settings, loads the data (``prepare``),
builds the model, then trains it for the protocol's epochs (``train_job`` / ``candidate_trainable`` themselves).
Outside Ray, the two calls that need a Ray session are replaced: the node id (``local``) and Tune's ``report``.

It prints the resident set (VmRSS, and its anonymous / file-backed parts) after each stage, then the peak
(VmHWM): the worker's whole-life high-water mark, training included. The heavy third-party packages the worker's
imports pull in are imported one by one first, each a line of its own, so each one's cost is its own line (a
package imported by another listed one is charged to the first). The yardstick, measured in the same run by a
second fresh process, is ``python -c "import torch"``: the last line is the worker's peak over that, a ratio that
changes far less with the machine than the megabytes do; and over the floor of any PyTorch training process, torch
with an optimizer built (``torch.optim.Optimizer.__init__`` imports ``torch._dynamo`` and SymPy, ~150 MiB, to
disable Dynamo around itself). The training line names the heavy packages first imported while training.
``--why`` also names the ablate module and line that first imported each heavy package.

File-backed pages (the shared libraries: torch's, CUDA's) are shared by every worker on a node; anonymous pages
are each worker's own. Ray's memory monitor counts both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# What a training worker could pull in that it may not need: each is imported on its own line, in this order, when
# the worker's imports bring it in (torchvision before timm: timm imports it, and torchvision brings torch._dynamo)
HEAVY = ("torchvision", "timm", "sklearn", "scipy", "pandas", "pyarrow", "statsmodels", "optuna", "ray.tune",
         "fvcore", "matplotlib", "seaborn", "PIL", "sympy")
# what each kind of worker imports: a Ray task unpickles train_job from its module; a Tune trial's actor has Tune
WORKER_MODULES = {"job": ("ablate.tune.jobs",), "trial": ("ray.tune", "ablate.tune.trainables")}
MIB = float(1 << 20)


def memory() -> dict[str, float]:
    """This process's resident memory now (VmRSS, RssAnon, RssFile) and its peak (VmHWM), in MiB (Linux)."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) * 1024 / MIB
    return fields


def heavy_loaded(modules: dict[str, Any]) -> list[str]:
    """The :data:`HEAVY` packages among ``modules`` (``sys.modules``), in :data:`HEAVY`'s order."""
    return [name for name in HEAVY if name in modules]


class ImportOrigin:
    """A meta-path finder that finds nothing: it notes, for each top-level heavy package as it is first imported,
    the innermost ablate source line on the stack (who pulled it in)."""

    def __init__(self) -> None:
        self.origins: dict[str, str] = {}

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name in HEAVY and name not in self.origins and name not in sys.modules:
            frame, via = sys._getframe(1), None
            while frame is not None:
                filename, function = frame.f_code.co_filename, frame.f_code.co_name
                if via is None and "importlib" not in filename and function != "find_spec":
                    via = frame.f_globals.get("__name__", "?")  # the module whose import statement this is
                if f"{os.sep}ablate{os.sep}" in filename and function not in ("find_spec", "exec_and_register"):
                    where = f"{Path(filename).relative_to(ROOT)}:{frame.f_lineno}"
                    self.origins[name] = where + ("" if via and via.startswith("ablate") else f" (via {via})")
                    break
                frame = frame.f_back
            else:
                self.origins[name] = f"{via} (no ablate module on the stack)"
        return None


def discover(path: str) -> dict[str, str]:
    """In a fresh process: the heavy packages the worker's modules pull in, each with the line that first did."""
    code = ("import sys, json; sys.path.insert(0, %r); import worker_memory as w; o = w.ImportOrigin(); "
            "sys.meta_path.insert(0, o); import importlib; [importlib.import_module(m) for m in %r]; "
            "print(json.dumps({m: o.origins.get(m, '?') for m in w.heavy_loaded(sys.modules)}))"
            % (str(Path(__file__).parent), WORKER_MODULES[path]))
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=ROOT, check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bare_torch(optimizer: bool = False) -> float:
    """Peak resident MiB of a fresh ``python -c "import torch"``; with ``optimizer``, once it has also built a torch
    optimizer, whose ``__init__`` imports ``torch._dynamo`` (to disable it): the floor of any training process."""
    code = ("import torch, json, sys; sys.path.insert(0, %r); import worker_memory as w; "
            + ("torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1); " if optimizer else "")
            + "print(w.memory()['VmHWM'])")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code % str(Path(__file__).parent)], check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def stages(model: str, path: str, heavy: list[str], run_dir: str, local: bool) -> list[tuple[str, dict[str, float]]]:
    """The worker's life, stage by stage, in this process: ``[(stage, memory())]``; the last is the training."""
    import importlib
    import warnings

    warnings.filterwarnings("ignore")
    seen = [("start", memory())]
    import torch  # noqa: F401

    seen.append(("import torch", memory()))
    import ray  # noqa: F401

    seen.append(("import ray", memory()))
    for name in heavy:
        importlib.import_module(name)
        seen.append((f"import {name}", memory()))
    for name in WORKER_MODULES[path]:
        importlib.import_module(name)
    seen.append((f"import {', '.join(WORKER_MODULES[path])} (the rest)", memory()))

    from ablate.models import BASELINES, BlockConfig, build_model
    from ablate.protocols import load_protocol
    from ablate.space import load_space
    from ablate.tune import trainables
    from ablate.tune.settings import RunSettings

    settings = RunSettings(load_space("qlblock"), load_protocol("digits"), Path(run_dir), trackers=(),
                           dashboard=False)
    seen.append(("settings", memory()))
    protocol, data, device = trainables.prepare(settings)
    seen.append(("data (prepare)", memory()))
    block = BASELINES.get(model) or BlockConfig.parse(model)
    built = build_model(block, settings.macro, data.num_classes)
    seen.append((f"model built ({sum(p.numel() for p in built.parameters()):,} params)", memory()))
    del built
    if path == "job":
        from ablate.tune import jobs

        if local:
            jobs.node_id = lambda: "local"
        from ablate.core.schema import Kind, Phase

        kind = Kind.BASELINE if model in BASELINES else Kind.CANDIDATE
        outcome = jobs.train_job(jobs.Job(kind, model, block, settings.seed, Phase.DESIGN), settings)
        status = outcome["row"]["status"]
    else:
        reported: list[dict[str, Any]] = []
        if local:
            from ray import tune

            trainables.node_id = lambda: "local"
            tune.report = reported.append
        config = {axis.name: getattr(block, axis.name) for axis in settings.space.axes}
        trainables.candidate_trainable(config, settings)
        status = f"{len(reported)} reports to Tune"
    late = [name for name in heavy_loaded(sys.modules) if name not in heavy]
    status += f"; then imported {', '.join(late)}" if late else ""
    seen.append((f"trained {model} for {protocol.epochs} epochs ({status})", memory()))
    return seen


def in_ray_task(model: str, path: str, heavy: list[str], run_dir: str) -> list[tuple[str, dict[str, float]]]:
    """:func:`stages` as a Ray task on a local Ray with one CPU (a real worker process, started for it)."""
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)])}})
    try:
        import worker_memory

        return ray.get(ray.remote(worker_memory.stages).options(num_cpus=1).remote(model, path, heavy, run_dir,
                                                                                  False))
    finally:
        ray.shutdown()


def show(seen: list[tuple[str, dict[str, float]]], torch_peak: float, floor: float, where: str) -> float:
    print(f"{where}:")
    print(f"  {'stage':60s} {'RSS':>7s} {'+Δ':>6s} {'anon':>7s} {'file':>6s} {'peak':>7s}   (MiB)")
    before = None
    for stage, mem in seen:
        delta = "" if before is None else f"{mem['VmRSS'] - before:+6.0f}"
        print(f"  {stage:60s} {mem['VmRSS']:7.0f} {delta:>6s} {mem['RssAnon']:7.0f} {mem['RssFile']:6.0f} "
              f"{mem['VmHWM']:7.0f}")
        before = mem["VmRSS"]
    peak = seen[-1][1]["VmHWM"]
    print(f"  peak {peak:.0f} MiB = {peak / torch_peak:.2f} × a bare `import torch` ({torch_peak:.0f} MiB), "
          f"{peak / floor:.2f} × `import torch` and a torch optimizer built ({floor:.0f} MiB)")
    return peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="multiply-dwconv-w4",
                        help="a block config or a baseline name (ResNet50, …); default: qlblock's widest QLNet block")
    parser.add_argument("--path", choices=sorted(WORKER_MODULES), default="job",
                        help="job: a Ray task's train_job (baselines, confirmations, ablations); trial: a Tune "
                             "search trial's candidate_trainable")
    parser.add_argument("--ray", action="store_true", help="also run it as a real Ray task (starts a local Ray)")
    parser.add_argument("--why", action="store_true", help="name the ablate line that imports each heavy package")
    parser.add_argument("--stages", help=argparse.SUPPRESS)  # internal: the fresh process's own run
    args = parser.parse_args(argv)
    if args.stages:
        print(json.dumps(stages(args.model, args.path, json.loads(args.stages), tempfile.mkdtemp(), local=True)))
        return 0
    origins = discover(args.path)
    heavy = list(origins)
    print(f"heavy packages a {args.path} worker imports: {', '.join(heavy) or 'none'}")
    if args.why:
        for name, origin in origins.items():
            print(f"  {name:12s} first imported by {origin}")
    torch_peak, floor = bare_torch(), bare_torch(optimizer=True)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-W", "ignore", __file__, "--model", args.model, "--path", args.path,
                          "--stages", json.dumps(heavy)], cwd=ROOT, check=True, capture_output=True, text=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    show(seen, torch_peak, floor, f"fresh process ({time.perf_counter() - start:.0f} s)")
    if args.ray:
        with tempfile.TemporaryDirectory() as run_dir:
            show(in_ray_task(args.model, args.path, heavy, run_dir), torch_peak, floor, "Ray task (a fresh worker)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
