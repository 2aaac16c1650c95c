"""Command line: ``python run_ablation.py --space qlblock`` runs an ablation; ``… report results/<run>`` rebuilds a report.

Bad input ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path
from typing import Sequence

from ablate import defaults
from ablate.errors import UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse would print the whole usage first)
        raise UsageError(f"{message} (see --help)")


def build_parser(prog: str = "run_ablation.py", description: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description=description or "Sample ConvNet blocks from a search space with Optuna, train them on Ray Tune, "
                    "and compare them with ResNet50 / R50-max / R50-hybrid baselines trained the same way. Results go "
                    "to results/<run>/ (trials.parquet, trials.csv, report.html).",
        epilog="Also: `run_ablation.py plan` says, before anything is trained, what each design costs here and can "
               "detect; `run_ablation.py report results/<run>` rebuilds a run's report (a running one too); "
               "`run_ablation.py status results/<run>` says how far a run has got; `run_ablation.py compare "
               "results/A results/B` gives two runs' rank agreement (Kendall τ, Spearman ρ, top-k overlap). "
               "Examples:\n"
               "  python run_ablation.py --space qlblock                      # CPU, embedded digits data\n"
               "  python run_ablation.py --space pflayer --protocol cifar10 --data-dir ~/data \\\n"
               "      --address auto --gpus-per-trial 0.5 --trials 64        # an existing Ray cluster\n"
               "  python run_ablation.py --resume --name RUN                  # continue an interrupted run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_argument_group("what to run")
    what.add_argument("--space", default="qlblock", help="search space name or YAML path (default: qlblock)")
    what.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_PATH",
                      help="a Python module or .py file that registers your own spatial ops or nonlinearities "
                           "(ablate.register_spatial / register_nonlinearity); repeatable")
    what.add_argument("--protocol", default="digits", help="training protocol (default: digits, offline)")
    what.add_argument("--data-dir", help="dataset folder for cifar10 / cifar100 / imagefolder protocols")
    what.add_argument("--download", action="store_true", help="download the dataset into --data-dir if absent")
    what.add_argument("--epochs", type=int, help="epochs per candidate and baseline (default: the protocol's)")
    what.add_argument("--trials", type=int, default=defaults.TRIALS,
                      help=f"candidates to sample (default: {defaults.TRIALS})")
    what.add_argument("--seed", type=int, default=0, help="seed of the sampler, data splits and training (default: 0)")
    design = parser.add_argument_group("design and replication")
    design.add_argument("--design", choices=["ablation", "balanced", "search", "grid"],
                        help="ablation: the reference block and every block that changes one axis from it, each and "
                             "the baselines under --seeds training seeds, judged against the reference (the paper's "
                             "ablation table); balanced: --trials configs with every choice about equally often, all "
                             "trained to the full budget; search: the sampler with ASHA after a balanced start-up "
                             "core; grid: every config (default: the space file's design:)")
    design.add_argument("--reference", metavar="CONFIG",
                        help="the ablation's reference block, e.g. multiply-dwconv-w2 (default: the space file's "
                             "reference:)")
    design.add_argument("--confirm", type=int, default=defaults.CONFIRM,
                        help="retrain the best K candidates (by the run seed's val top-1) and the baselines under "
                             "fresh training seeds; verdicts judge them there, on the test split "
                             f"(default: {defaults.CONFIRM}; 0: none)")
    design.add_argument("--seeds", type=int, default=defaults.SEEDS,
                        help=f"fresh training seeds per confirmed candidate and per baseline; in an ablation, the "
                             f"training seeds of every config and baseline (default: {defaults.SEEDS})")
    search = parser.add_argument_group("search")
    search.add_argument("--sampler", choices=["tpe", "nsga2", "grid", "random"],
                        help="Optuna sampler (default: tpe; nsga2 with several objectives)")
    search.add_argument("--objectives", help="top1, or top1 plus costs: top1,macs / top1,params / top1,latency "
                                             "(latency measured inside each trial before it trains; default: the "
                                             "space file's objectives, else top1)")
    search.add_argument("--scheduler", choices=["asha", "none"], default="asha",
                        help="early stopping of weak candidates (ASHA on val top-1; single objective only)")
    search.add_argument("--storage", help="Optuna storage URL (default: a journal file in the run folder)")
    where = parser.add_argument_group("where it runs")
    where.add_argument("--address", help="an existing Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: local Ray)")
    where.add_argument("--gpus-per-trial", type=float, help="GPUs per trial, fractions allowed (default: 1 if the cluster has GPUs, else 0)")
    where.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial (default: 1)")
    where.add_argument("--max-concurrent", type=int, help="trials at once (default: as many as the resources fit)")
    where.add_argument("--max-failures", type=int, default=2, help="retries of a crashed trial from its last checkpoint (default: 2)")
    where.add_argument("--no-dashboard", action="store_true", help="do not start the Ray dashboard")
    output = parser.add_argument_group("output")
    output.add_argument("--name", help="run folder under results/ (default: SPACE-PROTOCOL-TIMESTAMP)")
    output.add_argument("--resume", action="store_true", help="continue the run --name (default: the latest run) where it stopped")
    output.add_argument("--no-report", action="store_true", help="skip building report.md / report.html at the end")
    output.add_argument("--list-spaces", action="store_true", help="list the search spaces and exit")
    output.add_argument("--list-protocols", action="store_true", help="list the training protocols and exit")
    return parser


def list_spaces_text() -> str:
    from ablate.space import list_spaces, load_space

    lines = []
    for name in list_spaces():
        space = load_space(name)
        axes = ", ".join([f"{a.name} ({len(a.choices)})" for a in space.axes]
                         + ([f"width matched to {space.width_match}"] if space.width_match else []))
        lines.append(f"{name:11s} {space.size:4d} configs, design {space.design}: {axes} — {space.description.strip()}")
    return "\n".join(lines)


def list_protocols_text() -> str:
    from ablate.protocols import list_protocols, load_protocol

    lines = []
    for name in list_protocols():
        p = load_protocol(name)
        lines.append(f"{name:18s} {p.dataset:12s} macro {p.macro:15s} {p.epochs:4d} epochs — {p.description}")
        if p.source:
            lines.append(f"{'':18s} from: {p.source}")
    return "\n".join(lines)


def latest_run(results_dir: Path) -> Path:
    runs = sorted((p for p in results_dir.glob("*/run.json")), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise UsageError(f"no run to resume in {results_dir}/: start one with `python run_ablation.py --space qlblock`")
    return runs[-1].parent


def settings_from_args(args: argparse.Namespace, results_dir: Path, command: str):
    """Validate the flags (each mistake is one UsageError) and turn them into RunSettings."""
    from ablate.plugins import load_plugins
    from ablate.protocols import load_protocol
    from ablate.space import load_space, parse_objectives
    from ablate.space.design import design_points
    from ablate.tune import RunSettings

    if args.trials < 1:
        raise UsageError(f"--trials must be at least 1, got {args.trials}")
    if args.cpus_per_trial <= 0 or (args.gpus_per_trial is not None and args.gpus_per_trial < 0):
        raise UsageError("--cpus-per-trial must be > 0 and --gpus-per-trial ≥ 0")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise UsageError(f"--max-concurrent must be at least 1, got {args.max_concurrent}")
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    if args.confirm < 0 or args.seeds < 1:
        raise UsageError(f"--confirm must be 0 or more and --seeds at least 1, got {args.confirm} and {args.seeds}")
    plugins = load_plugins(args.plugin)  # before the space: its axes may name the plugins' ops
    space = load_space(args.space)
    if args.reference:
        try:
            space = dataclasses.replace(space, reference=space.point_of(args.reference))
        except ValueError as err:
            raise UsageError(f"--reference {args.reference}: {err}") from None
    protocol = load_protocol(args.protocol)
    if args.epochs is not None:
        protocol = protocol.with_overrides(epochs=args.epochs)
    if args.objectives:
        objectives, objectives_from = parse_objectives(args.objectives), getattr(args, "objectives_from", "--objectives")
    else:
        objectives, objectives_from = space.objectives, f"the space file {space.path.name}"
    sampler = args.sampler or ("nsga2" if len(objectives) > 1 else "tpe")
    design = args.design or space.design
    if design == "ablation" and space.reference is None:
        raise UsageError(f"--design ablation needs a reference block: pass --reference CONFIG (a point of space "
                         f"{space.name!r}) or add `reference:` to {space.path.name}")
    if design == "ablation" and args.seeds < 2:
        raise UsageError(f"an ablation judges each config on its own seeds: --seeds must be at least 2 (3 or more to "
                         f"detect much), got {args.seeds}")
    # no block is trained twice, so the space caps the trials; a grid or an ablation trains its whole design
    trials = (space.size if design == "grid" else len(design_points(space, design, 0, args.seed))
              if design == "ablation" else min(args.trials, space.size))
    name = args.name or f"{space.name}-{protocol.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if "/" in name or name.startswith("."):
        raise UsageError(f"--name {name!r} must be a plain folder name (it goes under {results_dir}/)")
    return RunSettings(
        space=space, protocol=protocol, run_dir=results_dir / name, trials=trials, seed=args.seed, sampler=sampler,
        objectives=objectives, scheduler=args.scheduler, address=args.address, gpus_per_trial=args.gpus_per_trial,
        cpus_per_trial=args.cpus_per_trial, max_concurrent=args.max_concurrent, storage=args.storage,
        dashboard=not args.no_dashboard, data_dir=args.data_dir, max_failures=args.max_failures, command=command,
        objectives_from=objectives_from, design=design, confirm=args.confirm, seeds=args.seeds, plugins=plugins,
    )


def resume_settings(args: argparse.Namespace, results_dir: Path, command: str):
    """The settings a run was started with (run.json), so a resume continues exactly that run; ``--address``,
    ``--data-dir`` and ``--no-dashboard`` may change where it goes on."""
    from ablate.results import read_run_json
    from ablate.tune import RunSettings

    run_dir = results_dir / args.name if args.name else latest_run(results_dir)
    meta = read_run_json(run_dir)
    if not meta:
        raise UsageError(f"cannot resume {run_dir}: no such run (see `ls {results_dir}/`)")
    return RunSettings.from_json(meta, run_dir, address=args.address or meta.get("address"),
                                 data_dir=args.data_dir or meta.get("data_dir"), dashboard=not args.no_dashboard,
                                 objectives_from="run.json (resumed)")


def summary_lines(table, predictions=None) -> list[str]:
    """The run in a few lines: trials by status, then the configs with their evidence top-1 ± 95 % interval
    (confirmed configs first: fresh seeds, test split) and their selection number."""
    from ablate.analysis import summarize
    from ablate.schema import search_trials

    trials = search_trials(table)
    counts = trials["status"].value_counts().to_dict()
    confirmations = int((table["kind"] == "candidate").sum()) - len(trials)
    lines = [f"{len(trials)} candidates: {counts.get('completed', 0)} completed, {counts.get('pruned', 0)} pruned, "
             f"{counts.get('failed', 0)} failed; {confirmations} confirmation and "
             f"{int((table['kind'] == 'baseline').sum())} baseline trainings"]
    for row in summarize(table, predictions).head(8).itertuples():
        ci = f"± {(row.test_top1_ci_high - row.test_top1_ci_low) / 2:4.1f}" if row.test_top1_ci_high == \
            row.test_top1_ci_high else "   (—)"
        delta = f"{row.delta_mean:+5.1f}" if row.delta_mean == row.delta_mean else "    —"
        seeds = f"{row.n_confirm} fresh seeds" if row.evidence == "confirm" else "run seed only"
        lines.append(f"  {row.name:24s} {row.kind:9s} test top-1 {row.test_top1_mean:5.1f}% {ci:6s} ({seeds:13s})"
                     f"  selection val {row.selection_val_top1:5.1f}%  Δ vs ResNet50 {delta}"
                     f"  MACs {row.macs / 1e6:7.1f} M")
    return lines


def preflight(settings, *, download: bool = False) -> None:
    """Every check that can fail on user input, before anything is written or started."""
    from ablate.data import load_protocol_data
    from ablate.tune import check_address, make_storage

    if download and not settings.data_dir:
        raise UsageError("--download needs --data-dir DIR to download into")
    load_protocol_data(settings.protocol, data_dir=settings.data_dir, device="cpu", seed=settings.seed, download=download)
    if settings.storage and not settings.storage.endswith((".journal", ".log")):
        make_storage(settings.storage, settings.run_dir)
    if settings.address:
        check_address(settings.address)


def run(args: argparse.Namespace, command: str) -> int:
    from ablate.results import results_dir as folder

    results_dir = folder()
    settings = resume_settings(args, results_dir, command) if args.resume else settings_from_args(args, results_dir, command)
    if not args.resume and settings.run_dir.exists():
        raise UsageError(f"{settings.run_dir} exists: pass --resume to continue it, or another --name")
    preflight(settings, download=args.download)
    from ablate.tune import run_ablation

    replication = (f"reference {settings.space.point_name(settings.space.reference)}, every config and baseline under "
                   f"{settings.seeds} seeds" if settings.ablation else
                   f"sampler {settings.sampler}, confirm the best {settings.confirm} under {settings.seeds} fresh seeds")
    print(f"ablation {settings.run_dir.name}: space {settings.space.name} ({settings.space.size} configs), protocol "
          f"{settings.protocol.name} ({settings.protocol.dataset}, {settings.protocol.epochs} epochs, macro {settings.macro}), "
          f"design {settings.design} ({settings.trials} configs), {replication}, objectives "
          f"{','.join(o.metric for o in settings.objectives)} (from {settings.objectives_from})", flush=True)
    try:
        outcome = run_ablation(settings, resume=args.resume)
    except KeyboardInterrupt:
        print(f"\ninterrupted: continue with `python run_ablation.py --resume --name {settings.run_dir.name}`", file=sys.stderr)
        return 130
    print("\n".join(summary_lines(outcome.table, outcome.predictions)))
    print(f"results: {outcome.run_dir}/trials.parquet and trials.csv ({len(outcome.table)} rows)")
    if not args.no_report:
        from ablate.report import build_report

        report = build_report(outcome.run_dir)
        print(f"report: {report.html} (and {report.markdown.name}, {len(report.figures)} figures)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["report"]:
            from ablate.report import main as report_main

            return report_main(argv[1:])
        if argv[:1] == ["compare"]:
            from ablate.analysis.compare import main as compare_main

            return compare_main(argv[1:])
        if argv[:1] == ["status"]:
            from ablate.monitor import main as status_main

            return status_main(argv[1:])
        if argv[:1] == ["plan"]:
            from ablate.planning.command import main as plan_main

            return plan_main(argv[1:])
        args = build_parser().parse_args(argv)
        if args.list_spaces or args.list_protocols:
            print(list_spaces_text() if args.list_spaces else list_protocols_text())
            return 0
        return run(args, "python run_ablation.py " + shlex.join(argv))
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
