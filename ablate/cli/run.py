"""``run``: the flags turned into :class:`ablate.tune.RunSettings` (which checks them), the checks that need the
world (data, storage, cluster) before anything is written, the run, and its summary."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import time
from pathlib import Path

from ablate.core.errors import UsageError

STUDY_NAME = re.compile(r"[A-Za-z0-9._-]+")  # --study: it names a folder (results/study-NAME)
INTERRUPTED = 130  # the exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells report it


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


def latest_run(results_dir: Path, prog: str = "python run_ablation.py") -> Path:
    runs = sorted((p for p in results_dir.glob("*/run.json")), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise UsageError(f"no run to resume in {results_dir}/: start one with `{prog} --space qlblock`")
    return runs[-1].parent


def settings_from_args(args: argparse.Namespace, results_dir: Path, command: str):
    """The run the flags describe: the space, protocol, plugins and objectives they name, loaded (each loader
    checks its own), and the rest checked by :class:`ablate.tune.RunSettings` itself.

    Raises:
        UsageError: Any flag that names something unknown or holds a value out of range (one line).
    """
    from ablate.plugins import load_plugins
    from ablate.protocols import load_protocol
    from ablate.space import load_space, parse_objectives
    from ablate.tune import RunSettings

    plugins = load_plugins(args.plugin)  # before the space: its axes may name the plugins' ops
    space = load_space(args.space)
    if args.reference:
        try:
            space = dataclasses.replace(space, reference=space.point_of(args.reference))
        except ValueError as err:
            raise UsageError(f"--reference {args.reference}: {err}") from None
    protocol = load_protocol(args.protocol)
    if args.epochs is not None:
        protocol = protocol.with_epochs(args.epochs)
    if args.objectives:
        objectives, objectives_from = parse_objectives(args.objectives), "--objectives"
    else:
        objectives, objectives_from = space.objectives, f"the space file {space.path.name}"
    name = args.name or f"{space.name}-{protocol.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if "/" in name or name.startswith("."):
        raise UsageError(f"--name {name!r} must be a plain folder name (it goes under {results_dir}/)")
    if args.study is not None and not STUDY_NAME.fullmatch(args.study):
        raise UsageError(f"--study {args.study!r} must be letters, digits, '.', '_' or '-' (it names the report's "
                         "folder, results/study-NAME)")
    return RunSettings(
        space=space, protocol=protocol, run_dir=results_dir / name, trials=args.trials, seed=args.seed,
        sampler=args.sampler, objectives=objectives, scheduler=args.scheduler, address=args.address,
        gpus_per_trial=args.gpus_per_trial, cpus_per_trial=args.cpus_per_trial, max_concurrent=args.max_concurrent,
        storage=args.storage, store=args.store, study=args.study, dashboard=not args.no_dashboard,
        data_dir=args.data_dir, max_failures=args.max_failures, command=command, objectives_from=objectives_from,
        design=args.design,
        confirm=args.confirm, seeds=args.seeds, plugins=plugins,
        **({} if args.tracker is None else {"trackers": tuple(t for t in args.tracker if t != "none")}),
    )


def resume_settings(args: argparse.Namespace, results_dir: Path, command: str, prog: str = "python run_ablation.py"):
    """The settings a run was started with (run.json), so a resume continues exactly that run; ``--address``,
    ``--data-dir`` and ``--no-dashboard`` may change where it goes on."""
    from ablate.results import read_run_json
    from ablate.tune import RunSettings
    from ablate.tune.record import unstarted_run

    run_dir = results_dir / args.name if args.name else latest_run(results_dir, prog)
    meta = read_run_json(run_dir)
    if unstarted_run(run_dir):
        raise unstarted_run(run_dir)
    if not meta:
        raise UsageError(f"cannot resume {run_dir}: no such run (see `ls {results_dir}/`)")
    return RunSettings.from_json(meta, run_dir, address=args.address or meta.get("address"),
                                 data_dir=args.data_dir or meta.get("data_dir"), dashboard=not args.no_dashboard,
                                 objectives_from="run.json (resumed)")


def summary_lines(table, summary) -> list[str]:
    """The run in a few lines: trials by status, then the configs of its summary (the run's analysis, saved beside
    its tables) with their evidence top-1 ± 95 % interval (confirmed configs first: fresh seeds, test split) and
    their selection number."""
    from ablate.core.schema import ABLATION, BASELINE, CANDIDATE, CONFIRM, FINAL_STATUSES, EvidenceKind, search_trials

    trials = search_trials(table)
    counts = trials["status"].value_counts().to_dict()
    searched = ", ".join(f"{counts.get(status, 0)} {status}" for status in FINAL_STATUSES)
    searched = f"{len(trials)} candidates: {searched}; " if len(trials) else ""
    phases = table.loc[table["kind"] == CANDIDATE, "phase"].value_counts()  # the models nothing selected on
    evidence = "".join(f"{phases[phase]} {label} and " for phase, label in ((ABLATION, "ablation"),
                                                                            (CONFIRM, "confirmation"))
                       if phases.get(phase, 0))
    lines = [f"{searched}{evidence}{int((table['kind'] == BASELINE).sum())} baseline trainings"]
    for row in summary.head(8).itertuples():
        ci = f"± {(row.test_top1_ci_high - row.test_top1_ci_low) / 2:4.1f}" if row.test_top1_ci_high == \
            row.test_top1_ci_high else "   (—)"
        delta = f"{row.delta_mean:+5.1f}" if row.delta_mean == row.delta_mean else "    —"
        seeds = f"{row.n_confirm} fresh seeds" if row.evidence == EvidenceKind.CONFIRMED else "run seed only"
        selected = row.selection_val_top1 == row.selection_val_top1  # NaN: an ablation selects nothing
        selection = f"  selection val {row.selection_val_top1:5.1f}%" if selected else ""
        lines.append(f"  {row.name:24s} {row.kind:9s} test top-1 {row.test_top1_mean:5.1f}% {ci:6s} ({seeds:13s})"
                     f"{selection}  Δ vs ResNet50 {delta}  MACs {row.macs / 1e6:7.1f} M")
    return lines


def preflight(settings, *, download: bool = False) -> None:
    """Every check that can fail on user input, before anything is written or started."""
    from ablate.data import load_protocol_data
    from ablate.tune import check_address, make_storage

    if download and not settings.data_dir:
        raise UsageError("--download needs --data-dir DIR to download into")
    load_protocol_data(settings.protocol, data_dir=settings.data_dir, device="cpu", seed=settings.seed,
                       download=download)
    if settings.storage and not settings.storage.endswith((".journal", ".log")):
        make_storage(settings.storage, settings.run_dir)
    from ablate.store import open_store

    open_store(settings.store_url)  # unreachable, damaged, of a newer schema: one line before anything starts
    if settings.address:
        check_address(settings.address)


def run(args: argparse.Namespace, command: str, prog: str) -> int:
    """``run``: list what was asked, or run (or resume) the ablation, print its summary and build its report.

    Returns:
        0 when done, :data:`INTERRUPTED` when Ctrl-C stopped it (after saying how to resume).
    """
    if args.list_spaces or args.list_protocols:
        print(list_spaces_text() if args.list_spaces else list_protocols_text())
        return 0
    from ablate.results import results_dir as folder
    from ablate.tune.record import unstarted_run

    results_dir = folder()
    settings = resume_settings(args, results_dir, command, prog) if args.resume else \
        settings_from_args(args, results_dir, command)
    if not args.resume and unstarted_run(settings.run_dir):
        raise unstarted_run(settings.run_dir)
    if not args.resume and settings.run_dir.exists():
        raise UsageError(f"{settings.run_dir} exists: pass --resume to continue it, or another --name")
    preflight(settings, download=args.download)
    from ablate.tune import run_ablation

    replication = (f"reference {settings.space.point_name(settings.space.reference)}, every config and baseline under "
                   f"{settings.seeds} seeds" if settings.ablation else
                   f"sampler {settings.sampler}, confirm the best {settings.confirm} under "
                   f"{settings.seeds} fresh seeds")
    print(f"ablation {settings.run_dir.name}: space {settings.space.name} ({settings.space.size} configs), protocol "
          f"{settings.protocol.name} ({settings.protocol.dataset}, {settings.protocol.epochs} epochs, macro "
          f"{settings.macro}), design {settings.design} ({settings.trials} configs), {replication}, objectives "
          f"{','.join(o.metric for o in settings.objectives)} (from {settings.objectives_from})", flush=True)
    try:
        outcome = run_ablation(settings, resume=args.resume)
    except KeyboardInterrupt:
        if (settings.run_dir / "run.json").is_file():
            print(f"\ninterrupted: nothing finished is lost; continue with `{prog} --resume --name "
                  f"{settings.run_dir.name}`", file=sys.stderr, flush=True)
        else:
            print("\ninterrupted before anything was trained: start the run again", file=sys.stderr, flush=True)
        return INTERRUPTED
    from ablate.results import analysis_of

    print("\n".join(summary_lines(outcome.table, analysis_of(outcome.run_dir).summary)))
    print(f"results: {outcome.run_dir}/trials.parquet and trials.csv ({len(outcome.table)} rows)")
    if not args.no_report:
        from ablate.report import build_report

        report = build_report(outcome.run_dir)
        print(f"report: {report.html} (and {report.markdown.name}, {len(report.figures)} figures)")
    return 0
