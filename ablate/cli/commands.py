"""What each subcommand does with its parsed flags: one handler per :data:`ablate.cli.parser.COMMANDS` entry.

Each imports what it needs when it runs, so ``status``, ``report`` and ``compare`` never import torch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from ablate.cli.run import run

Handler = Callable[[argparse.Namespace, str, str], int]  # (flags, command line as typed, program) → exit code


def plan(args: argparse.Namespace, command: str, prog: str) -> int:
    """``plan``: the run the flags describe, planned against the alternatives (a pilot first where nothing is known)."""
    from ablate.cli.run import settings_from_args
    from ablate.planning.command import parse_budget, plan_lines, resolved
    from ablate.results import results_dir as folder

    budget = parse_budget(args.budget)
    results_dir = folder()
    settings = resolved(settings_from_args(args, results_dir, command))
    print("\n".join(plan_lines(settings, results_dir, budget, args.target, prog)))
    return 0


def report(args: argparse.Namespace, command: str, prog: str) -> int:
    from ablate.core.errors import UsageError
    from ablate.report import build_report

    if args.study is not None:
        if args.run_dir:
            raise UsageError("--study reports the study's runs from the store: pass it, or run folders, not both")
        from ablate.report.pooled import study_folders
        from ablate.results import results_dir

        run_dirs = study_folders(args.study, args.store)
        out = args.out or results_dir() / f"study-{args.study}"
    elif not args.run_dir:
        raise UsageError(f"name a run folder (results/<run>), several to pool, or --study NAME (see {prog} --help)")
    else:
        run_dirs, out = args.run_dir, args.out
    if len(run_dirs) > 1:
        from ablate.report.pooled import pool_runs

        pooled = pool_runs(run_dirs, out)
        print(pooled.line(), flush=True)
        outputs = build_report(pooled.folder)
    else:
        if args.out:
            raise UsageError("--out is for several runs pooled into one report; one run's report goes into its folder")
        outputs = build_report(run_dirs[0])
    print(f"wrote {outputs.markdown}\nwrote {outputs.html}\nwrote {len(outputs.figures)} figures")
    return 0


def status(args: argparse.Namespace, command: str, prog: str) -> int:
    from ablate.monitor import status_lines

    print("\n".join(status_lines(Path(args.run_dir))))
    return 0


def compare(args: argparse.Namespace, command: str, prog: str) -> int:
    from ablate.report.compare import compare as compare_runs
    from ablate.report.compare import report_lines

    agreement, candidates, folder = compare_runs(args.run_a, args.run_b, args.out, args.top_k)
    print("\n".join(report_lines(agreement, Path(args.run_a).name, Path(args.run_b).name, candidates)))
    print(f"wrote {folder / 'scatter.png'} and {folder / 'shared.csv'}")
    return 0


def costs(args: argparse.Namespace, command: str, prog: str) -> int:
    import torch

    from ablate.core.errors import UsageError
    from ablate.core.registry import lookup
    from ablate.costs import cost_table
    from ablate.models.networks import MACROS
    from ablate.plugins import load_plugins

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    load_plugins(args.plugin)
    lookup(MACROS, args.macro, "macro", UsageError)
    table = cost_table(args.models, macro=args.macro, image_size=args.image_size, num_classes=args.num_classes,
                       device=device, batch_size=args.batch_size, timing=not args.no_timing,
                       progress=lambda n: print(f"measuring {n} …", file=sys.stderr, flush=True))
    device_name = torch.cuda.get_device_name(0) if device.startswith("cuda") else \
        f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {device_name}; MACs = multiply-accumulates of conv/linear (the papers' 'FLOPs'); "
          f"elementwise = BN, activations, products, sums, pooling windows (per image)")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"))
    return 0


QUERY_COLUMNS = ["run", "trial_id", "name", "phase", "seed", "protocol", "epochs", "status", "val_top1", "test_top1",
                 "macs", "reused_from"]


def query(args: argparse.Namespace, command: str, prog: str) -> int:
    """``query``: the store's models across runs, filtered (``COLUMN=VALUE[,VALUE…]``), as a table or CSV."""
    from ablate.core.errors import UsageError
    from ablate.store import query as query_store

    filters = {}
    for text in args.filters:
        column, sep, values = text.partition("=")
        if not sep or not column:
            raise UsageError(f"{text!r} is not a filter: write COLUMN=VALUE, e.g. nonlinearity=relu or seed=0,1")
        filters[column] = [_typed(v) for v in values.split(",")]
    table = query_store(args.store, **filters)
    columns = args.columns.split(",") if args.columns else None if args.csv else \
        [c for c in QUERY_COLUMNS if c in table]
    unknown = sorted(set(columns or ()) - set(table.columns))
    if unknown and len(table):
        raise UsageError(f"no column {', '.join(unknown)}; the columns are {', '.join(table.columns)}")
    shown = table if columns is None else table.reindex(columns=columns)
    if args.csv:
        shown.to_csv(sys.stdout, index=False)
        return 0
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.2f}") if len(shown) else "no model matches")
    print(f"{len(shown)} rows ({table['key'].nunique() if len(table) else 0} models)", file=sys.stderr)
    return 0


def _typed(value: str) -> int | float | str:
    """A filter's value as the column holds it: a number where it reads as one."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


HANDLERS: dict[str, Handler] = {"run": run, "plan": plan, "report": report, "status": status, "compare": compare,
                                "costs": costs, "query": query}
