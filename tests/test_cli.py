"""The command line: one parser whose help and errors name the command typed; errors are one line on stderr, exit
code 2, no traceback, nothing written; what reads a run folder imports no torch."""

import subprocess
import sys

import pytest
from conftest import ROOT, run_cli

from ablate import cli

BAD_SPACE = "axes:\n  nonlinearity:\n    choices: [relu, swish]\n"


@pytest.mark.parametrize("argv,message", [
    (["--space", "nope"], "unknown search space 'nope': available: full, pflayer, qlblock"),
    (["--protocol", "mnist"], "unknown protocol 'mnist'"),
    (["--trials", "0"], "--trials must be at least 1"),
    (["--epochs", "0"], "'epochs' is out of range: 0"),
    (["--seeds", "1"], "--seeds must be at least 2"),
    (["--max-concurrent", "0"], "--max-concurrent must be at least 1"),
    (["--protocol", "cifar10", "--data-dir", "/nonexistent/data"], "/nonexistent/data"),
    (["--address", "127.0.0.1:1"], "cannot reach a Ray cluster at '127.0.0.1:1'"),
    (["--storage", "nosuchdb://x/y"], "cannot open Optuna storage 'nosuchdb://x/y'"),
    (["--resume", "--name", "never-ran"], "cannot resume"),
    (["--objectives", "top1,beauty"], "unknown objective metric 'beauty'"),
    (["--sampler", "bayes"], "invalid choice: 'bayes'"),
    (["--gpus-per-trial", "-1"], "--gpus-per-trial"),
])
def test_errors_are_one_line_with_exit_code_2(capsys, results_dir, argv, message):
    code, out, err = run_cli(capsys, *argv, "--no-dashboard")
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err + out
    assert not any(results_dir.glob("*/run.json")) if results_dir.exists() else True  # nothing written


def test_invalid_space_file_error_names_file_and_line(capsys, results_dir, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_SPACE)
    code, _, err = run_cli(capsys, "--space", str(bad))
    assert code == 2 and err.strip() == (f"error: {bad}:2: invalid value 'swish' for axis 'nonlinearity': expected one "
                                         "of relu, multiply, hardball (a plugin's op? name its module under plugins: "
                                         "or pass --plugin)")


def test_missing_cifar_names_the_directory_and_the_flag(capsys, results_dir, tmp_path):
    code, _, err = run_cli(capsys, "--protocol", "cifar10", "--data-dir", str(tmp_path / "data"))
    assert code == 2 and str(tmp_path / "data") in err and "--download" in err


def test_existing_run_is_not_overwritten(capsys, results_dir):
    (results_dir / "taken").mkdir(parents=True)
    (results_dir / "taken" / "keep.txt").write_text("mine")
    (results_dir / "taken" / "run.json").write_text("{}")
    code, _, err = run_cli(capsys, "--name", "taken")
    assert code == 2 and "--resume" in err
    assert (results_dir / "taken" / "keep.txt").read_text() == "mine"


def test_listings(capsys):
    code, out, _ = run_cli(capsys, "--list-spaces")
    assert code == 0 and {"qlblock", "pflayer", "full"} <= {line.split()[0] for line in out.splitlines()}
    code, out, _ = run_cli(capsys, "--list-protocols")
    assert code == 0 and {"digits", "cifar10", "cifar100", "imagenet-pflayer"} <= {
        line.split()[0] for line in out.splitlines()}


def test_help_reads_well(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"], prog="python run_ablation.py")
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert out.startswith("usage: python run_ablation.py [-h] [--space SPACE]")
    for flag in ("--space", "--protocol", "--trials", "--resume", "--address", "--gpus-per-trial", "--sampler",
                 "--objectives", "--storage", "--no-dashboard", "--list-spaces", "python run_ablation.py report …",
                 "{tpe,nsga2,grid,random}", "{ablation,balanced,search,grid}", "exits 130"):
        assert flag in out


def test_report_of_an_empty_folder_exits_2(capsys, tmp_path):
    code, _, err = run_cli(capsys, "report", str(tmp_path))
    assert code == 2 and "trials.parquet" in err


@pytest.mark.parametrize("argv,names,source", [
    (["--space", "full"], ["top1", "macs"], "the space file full.yaml"),
    (["--space", "full", "--objectives", "top1"], ["top1"], "--objectives"),
    (["--space", "qlblock", "--objectives", "top1,latency"], ["top1", "latency"], "--objectives"),
])
def test_objectives_come_from_the_space_file_unless_the_flag_overrides(results_dir, argv, names, source):
    args = cli.build_parser().parse_args(["run", *argv])
    settings = cli.settings_from_args(args, results_dir, "test")
    assert [o.metric for o in settings.objectives] == names and settings.objectives_from == source
    assert settings.sampler == ("nsga2" if len(names) > 1 else "tpe")


def test_the_command_line_and_the_api_share_one_set_of_defaults(tmp_path):
    import dataclasses

    from ablate.cli import build_parser, settings_from_args
    from ablate.space import load_space
    from ablate.tune import RunSettings

    args = build_parser().parse_args(["run"])
    fields = {f.name: f.default for f in dataclasses.fields(RunSettings)}
    assert ((args.trials, args.confirm, args.seeds) == (fields["trials"], fields["confirm"], fields["seeds"])
            == (12, 3, 5))
    from_cli = settings_from_args(args, tmp_path, "python run_ablation.py")
    api = RunSettings(load_space("qlblock"), from_cli.protocol, from_cli.run_dir)
    for name in ("trials", "design", "confirm", "seeds", "seed", "scheduler", "cpus_per_trial", "max_failures"):
        assert getattr(from_cli, name) == getattr(api, name), name
    assert api.design == load_space("qlblock").design == "ablation"  # None: the space file's design
    assert api.trials == 8  # an ablation trains its reference and 7 one-axis variants, whatever --trials says


# --- one parser: every command's help and errors name the command as typed; `run` is the default --------------


@pytest.mark.parametrize("command", [c for c in cli.COMMANDS if c != "run"] + ["run"])
def test_help_and_errors_name_the_command_typed(capsys, command):
    for prog in ("python run_ablation.py", "python -m ablate", "ablate"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([command, "--help"], prog=prog)
        assert exit_info.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: {prog} {command} [-h]")
        assert cli.main([command, "--no-such-flag"], prog=prog) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and f"(see {prog} {command} --help)" in err, err


def test_the_run_flags_alone_are_the_run_command(capsys, results_dir):
    """`python run_ablation.py --space qlblock …` is `… run --space qlblock …`: the same flags, errors naming the
    program alone, as before subcommands existed."""
    assert cli.main(["--trials", "0", "--no-dashboard"], prog="python run_ablation.py") == 2
    assert capsys.readouterr().err.strip() == "error: --trials must be at least 1, got 0"
    assert cli.main(["--sampler", "bayes"], prog="python run_ablation.py") == 2
    assert "(see python run_ablation.py --help)" in capsys.readouterr().err
    assert cli.main(["run", "--sampler", "bayes"], prog="python run_ablation.py") == 2
    assert "(see python run_ablation.py run --help)" in capsys.readouterr().err
    assert cli.main(["repot", "x"], prog="python run_ablation.py") == 2
    assert "invalid choice: 'repot' (choose from 'run', 'plan', 'report', 'status', 'compare', 'costs', 'query')" in \
        capsys.readouterr().err


def test_a_subcommand_s_help_and_errors_name_it_under_python_dash_m_ablate(capsys):
    with pytest.raises(SystemExit):
        cli.main(["report", "--help"], prog="python -m ablate")
    assert capsys.readouterr().out.startswith("usage: python -m ablate report [-h] [--study STUDY] [--store STORE]")
    assert cli.main(["costs", "--no-such-flag", "x"], prog="python -m ablate") == 2
    assert "(see python -m ablate costs --help)" in capsys.readouterr().err


def test_the_settings_check_themselves_for_the_api_too():
    """Validation lives in RunSettings: the API gets the same one-line UsageError as the command line."""
    from pathlib import Path

    from ablate.core.errors import UsageError
    from ablate.protocols import load_protocol
    from ablate.space import load_space
    from ablate.tune import RunSettings

    space, protocol = load_space("qlblock"), load_protocol("digits")
    for fields, message in [({"trials": 0, "design": "balanced"}, "--trials must be at least 1, got 0"),
                            ({"sampler": "bayes"}, "unknown sampler 'bayes'"),
                            ({"design": "nope"}, "unknown design 'nope'"),
                            ({"cpus_per_trial": 0}, "--cpus-per-trial must be > 0"),
                            ({"seeds": 1}, "--seeds must be at least 2")]:
        with pytest.raises(UsageError, match=message):
            RunSettings(space, protocol, Path("results/x"), **fields)
    settings = RunSettings(space, protocol, Path("results/x"), design="balanced", trials=10 ** 6)
    assert settings.trials == space.size and settings.sampler == "tpe"  # no block twice; one objective: tpe


def test_every_sampler_name_the_command_line_offers_builds():
    from ablate.core import defaults
    from ablate.space import load_space
    from ablate.tune import make_sampler

    space = load_space("qlblock")
    for name in defaults.SAMPLERS:
        assert make_sampler(name, space, 0, 4) is not None


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args, *(["-c", code] if code else [])], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_python_dash_m_ablate_is_the_command_line():
    done = _python("", "-m", "ablate", "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m ablate [-h] [--space SPACE]"), done.stderr
    done = _python("", "run_ablation.py", "report", "--help")
    assert done.returncode == 0 and \
        done.stdout.startswith("usage: python run_ablation.py report [-h] [--study STUDY] [--store STORE]")
    done = _python("", "-m", "ablate", "costs", "--no-such-flag")
    assert done.returncode == 2 and "(see python -m ablate costs --help)" in done.stderr, done.stderr
    # the libraries' old entries (the command line sits above them): one line naming the command, exit 2
    done = _python("", "-m", "ablate.report", "results/my run")
    assert done.returncode == 2 and done.stdout == "" and done.stderr == (
        "error: `python -m ablate.report` is now `python -m ablate report 'results/my run'` "
        "(or `python run_ablation.py report …`)\n"), done.stderr
    done = _python("", "-m", "ablate.costs", "resnet50")
    assert done.returncode == 2 and done.stderr.startswith(
        "error: `python -m ablate.costs` is now `python -m ablate costs resnet50`"), done.stderr


def test_help_status_report_and_compare_import_no_torch(tmp_path):
    """What reads a run folder never imports torch (nor timm, Ray, Optuna): ``--help`` answers at once, and
    ``status`` / ``report`` / ``compare`` work where torch is not installed. Checked on a whole simulated run."""
    import json

    import numpy as np
    from simulated_runs import ablation_meta, simulate_ablation

    trials, predictions = simulate_ablation(np.random.default_rng(0))
    run = tmp_path / "run"
    run.mkdir()
    trials.to_parquet(run / "trials.parquet")
    predictions.to_parquet(run / "predictions.parquet")
    from ablate.protocols import load_protocol
    from ablate.space import load_space
    from ablate.tune import RunSettings

    space = RunSettings(load_space("qlblock"), load_protocol("digits"), run).to_json()["space"]  # what a run writes
    (run / "run.json").write_text(json.dumps({**ablation_meta(), "space": space, "trials_requested": 8,
                                              "finished": "2026-01-01", "wall_seconds": 60.0}))
    code = f"""
import sys
from ablate.cli import main

def heavy(*names):
    return sorted(m for m in names if m in sys.modules)

try:
    main(["--help"])
except SystemExit:
    pass
print("HELP", heavy("torch", "timm", "ray", "optuna", "pandas", "numpy"))
print("STATUS", main(["status", {str(run)!r}]), heavy("torch", "timm", "ray", "optuna"))
print("COMPARE", main(["compare", {str(run)!r}, {str(run)!r}, "--out", {str(tmp_path / 'cmp')!r}]),
      heavy("torch", "timm", "ray"))
print("REPORT", main(["report", {str(run)!r}]), heavy("torch", "timm", "ray"))  # Optuna's fANOVA draws a figure
"""
    done = _python(code)
    lines = [line for line in done.stdout.splitlines() if line.split(" ")[0] in ("HELP", "STATUS", "COMPARE", "REPORT")]
    assert lines == ["HELP []", "STATUS 0 []", "COMPARE 0 []", "REPORT 0 []"], done.stdout[-2000:] + done.stderr[-2000:]
    assert (run / "report.html").is_file()


def test_the_closing_summary_counts_an_ablations_models_as_ablation_trainings():
    import numpy as np
    from simulated_runs import simulate_ablation, simulate_run

    from ablate.analysis import summarize
    from ablate.cli.run import summary_lines

    trials, predictions = simulate_ablation(np.random.default_rng(0))
    first, *configs = summary_lines(trials, summarize(trials, predictions))
    assert first.startswith(f"{(trials.kind == 'candidate').sum()} ablation and ") and "confirmation" not in first
    assert configs and not [line for line in configs if "nan" in line or "selection" in line]  # it selects nothing
    trials, predictions = simulate_run(np.random.default_rng(0))
    first = summary_lines(trials, summarize(trials, predictions))[0]
    assert first.split(":")[0].endswith("candidates") and "confirmation and" in first and "ablation" not in first
