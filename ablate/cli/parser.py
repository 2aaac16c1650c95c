"""The one argparse parser: a subcommand per :data:`COMMANDS` entry, each with the flags it takes.

Building it imports nothing heavy (no torch, pandas or Ray): the choices it lists come from ``ablate.core.defaults``;
what the user names otherwise (a space, a protocol, a macro, objectives) is checked where it is loaded, by its
registry, which lists the names it knows.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

from ablate.core import defaults
from ablate.core.errors import UsageError
from ablate.trackers import TRACKERS

_EXAMPLES = """\
Examples:
  {prog} --space qlblock                      # CPU, embedded digits data
  {prog} --space pflayer --protocol cifar10 --data-dir ~/data \\
      --address auto --gpus-per-trial 0.5 --trials 64        # an existing Ray cluster
  {prog} --resume --name RUN                  # continue an interrupted run (Ctrl-C exits 130 and says so)"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse would print the whole usage first)
        raise UsageError(f"{message} (see {self.prog} --help)")


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of a run (``run``, and ``plan``, which plans the run they describe)."""
    what = parser.add_argument_group("what to run")
    what.add_argument("--space", default="qlblock",
                      help="search space name or YAML path (default: qlblock; --list-spaces lists them)")
    what.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_PATH",
                      help="a Python module or .py file that registers your own spatial ops or nonlinearities "
                           "(ablate.register_spatial / register_nonlinearity); repeatable")
    what.add_argument("--protocol", default="digits",
                      help="training protocol (default: digits, offline; --list-protocols lists them)")
    what.add_argument("--data-dir", help="dataset folder for cifar10 / cifar100 / imagefolder protocols")
    what.add_argument("--download", action="store_true", help="download the dataset into --data-dir if absent")
    what.add_argument("--epochs", type=int, help="epochs per candidate and baseline (default: the protocol's)")
    what.add_argument("--trials", type=int, default=defaults.TRIALS,
                      help=f"candidates to sample (default: {defaults.TRIALS})")
    what.add_argument("--seed", type=int, default=0, help="seed of the sampler, data splits and training (default: 0)")
    design = parser.add_argument_group("design and replication")
    design.add_argument("--design", choices=defaults.DESIGNS,
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
    search.add_argument("--sampler", choices=defaults.SAMPLERS,
                        help="Optuna sampler (default: tpe; nsga2 with several objectives)")
    search.add_argument("--objectives", help="top1, or top1 plus costs: top1,macs / top1,params / top1,latency "
                                             "(latency measured inside each trial before it trains; default: the "
                                             "space file's objectives, else top1)")
    search.add_argument("--scheduler", choices=defaults.SCHEDULERS, default=defaults.SCHEDULERS[0],
                        help="early stopping of weak candidates (ASHA on val top-1; single objective only)")
    search.add_argument("--storage", help="Optuna storage URL (default: a journal file in the run folder)")
    output_store = parser.add_argument_group("store")
    output_store.add_argument("--store", help="where every trained model is kept across runs and looked up before "
                                              "training (a model found is reused, not trained again): a SQLite "
                                              "file or a URL such as postgresql://user@host:5432/db (default: "
                                              "results/ablate.db)")
    output_store.add_argument("--study", help="file the run under a study: `report --study NAME` pools the "
                                              "study's runs from the store into one report")
    where = parser.add_argument_group("where it runs")
    where.add_argument("--address", help="an existing Ray cluster: auto, HOST:PORT or ray://HOST:PORT "
                                         "(default: local Ray)")
    where.add_argument("--gpus-per-trial", type=float,
                       help="GPUs per trial, fractions allowed (default: 1 if the cluster has GPUs, else 0)")
    where.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial (default: 1)")
    where.add_argument("--max-concurrent", type=int, help="trials at once (default: as many as the resources fit)")
    where.add_argument("--max-failures", type=int, default=2,
                       help="retries of a crashed trial from its last checkpoint (default: 2)")
    where.add_argument("--no-dashboard", action="store_true", help="do not start the Ray dashboard")
    output = parser.add_argument_group("output")
    output.add_argument("--name", help="run folder under results/ (default: SPACE-PROTOCOL-TIMESTAMP)")
    output.add_argument("--resume", action="store_true",
                        help="continue the run --name (default: the latest run) where it stopped")
    output.add_argument("--no-report", action="store_true", help="skip building report.md / report.html at the end")
    output.add_argument("--tracker", action="append", choices=[*TRACKERS, "none"], metavar="NAME",
                        help=f"also write every training to this experiment tracker: {', '.join(TRACKERS)}; "
                             "repeatable (default: tensorboard where tensorboardX is installed; none: no tracker)")
    output.add_argument("--list-spaces", action="store_true", help="list the search spaces and exit")
    output.add_argument("--list-protocols", action="store_true", help="list the training protocols and exit")


def _plan_arguments(parser: argparse.ArgumentParser) -> None:
    _run_arguments(parser)
    wanted = parser.add_argument_group("plan")
    wanted.add_argument("--budget", default="10m", help="wall time the run may take here: 90s, 10m, 3h (default: 10m)")
    wanted.add_argument("--target", type=float, default=5.0,
                        help="the difference (pp) its main questions must detect with 80 %% power (default: 5)")


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", nargs="*", help="a results/<run> folder holding trials.parquet (a running run's "
                        "too); several ablation runs of one experiment are pooled and reported as one")
    parser.add_argument("--study", help="instead of folders: every run filed under `run --study NAME` in the store")
    parser.add_argument("--store", help="the store --study reads (default: results/ablate.db)")
    parser.add_argument("--out", help="where several runs' pooled tables and report go (default: "
                        "results/pooled-A+B…, or results/study-NAME)")


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a results/<run> folder")


def _compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_a", help="first results/<run> folder (or run name)")
    parser.add_argument("run_b", help="second results/<run> folder (or run name)")
    parser.add_argument("--out", help="folder for scatter.png and shared.csv (default: compare-A-vs-B beside A)")
    parser.add_argument("--top-k", type=int, default=5, help="size of the top lists compared (default: 5)")


def _costs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", help="timm model names or block configs, e.g. relu-twist-w1")
    parser.add_argument("--macro", default="resnet50", help="macro network for block configs (default: resnet50)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input side (default: the model's own, 224 for ImageNet models)")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--device", help="where to time them (default: cuda if there is a GPU, else cpu)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size of the throughput measurement")
    parser.add_argument("--no-timing", action="store_true", help="count only; skip latency and throughput")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_PATH",
                        help="a module or .py file registering your own spatial ops or nonlinearities; repeatable")


def _query_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("filters", nargs="*", metavar="COLUMN=VALUE[,VALUE…]",
                        help="keep the models whose column has one of the values: an axis (nonlinearity=relu), "
                             "protocol, seed, split_seed, phase, run, kind, status, config …")
    parser.add_argument("--store", help="the store: a SQLite file or a URL (default: results/ablate.db)")
    parser.add_argument("--columns", help="the columns to show, comma-separated (default: a short set; with --csv "
                                          "all of them)")
    parser.add_argument("--csv", action="store_true", help="write the rows as CSV to stdout")


@dataclass(frozen=True)
class Command:
    """A subcommand: its one-line summary, description, flags, and the handler (``ablate.cli.commands``) that runs
    it with the parsed flags and the command line as typed."""

    summary: str
    description: str
    arguments: Callable[[argparse.ArgumentParser], None]


COMMANDS: dict[str, Command] = {
    "run": Command("run an ablation (the default command)",
                   "Sample ConvNet blocks from a search space with Optuna, train them on Ray Tune, and compare them "
                   "with ResNet50 / R50-max / R50-hybrid baselines trained the same way. Results go to "
                   "results/<run>/ (trials.parquet, trials.csv, report.html).", _run_arguments),
    "plan": Command("what each design costs here and can detect, before anything is trained",
                    "Before anything is trained: what each design costs here and what it can detect; the cheapest "
                    "that detects --target within --budget.", _plan_arguments),
    "report": Command("rebuild a run's report (a running one's too), or pool several runs into one",
                      "Build the comparison report: report.md, report.html and figures/ in the run folder (several "
                      "ablation runs of one experiment: pooled into --out, then reported as one).",
                      _report_arguments),
    "status": Command("how far a run has got", "How far a run has got, read from its folder alone (no Ray).",
                      _status_arguments),
    "compare": Command("two runs' rank agreement (Kendall τ, Spearman ρ, top-k overlap)",
                       "Rank agreement (Kendall τ, Spearman ρ, top-k overlap) of two runs' shared configs.",
                       _compare_arguments),
    "costs": Command("params, MACs, element-wise ops, latency and throughput of models",
                     "Print the cost table (params, MACs, element-wise ops, latency, throughput) of models: timm "
                     "names (resnet50, resnet50_max, resnet50_hybrid, qlnet, …) or block configs "
                     "(NONLINEARITY-SPATIAL-wWIDTH, built on --macro).", _costs_arguments),
    "query": Command("every model the store holds, across runs, filtered on any column",
                     "Every model each run trained or reused, from the store (results/ablate.db, or --store): one "
                     "row per run and model, filtered on any column (COLUMN=VALUE).", _query_arguments),
}
DEFAULT_COMMAND = "run"


def build_parser(prog: str = "python run_ablation.py", progs: dict[str, str] | None = None) -> argparse.ArgumentParser:
    """The command line's parser: ``prog COMMAND [flags]``, one subparser per :data:`COMMANDS` entry.

    Args:
        prog: The command as the user typed it (``python run_ablation.py``, ``python -m ablate``, ``ablate``).
        progs: A subcommand's program where it is not ``prog COMMAND``: the run's is ``prog`` when the user typed
            its flags alone.

    Returns:
        The parser; its ``command`` attribute names the subcommand parsed.
    """
    progs = progs or {}
    others = "".join(f"\n  {prog} {name} …  {c.summary}" for name, c in COMMANDS.items() if name != DEFAULT_COMMAND)
    parser = _Parser(prog=prog, description="Ablations of ConvNet blocks: " + COMMANDS["run"].description,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    parser.set_defaults(subparsers=sub.choices)  # name → subparser: its errors name it (see parse)
    for name, command in COMMANDS.items():
        epilog = (f"Other commands (each with --help):{others}\n\n" + _EXAMPLES.format(prog=progs.get(name, prog))
                  if name == DEFAULT_COMMAND else None)
        command.arguments(sub.add_parser(name, prog=progs.get(name, f"{prog} {name}"), help=command.summary,
                                         description=command.description, epilog=epilog,
                                         formatter_class=argparse.RawDescriptionHelpFormatter))
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parser.parse_args(argv)``, but a flag the subcommand does not take is its error (argparse would make it
    the top parser's, whose message names the program without the subcommand).

    Raises:
        UsageError: Any parse error, in one line that names the command as typed.
    """
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        args.subparsers[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return args
