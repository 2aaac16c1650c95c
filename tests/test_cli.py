"""Command-line errors: one line on stderr, exit code 2, no traceback, nothing written."""

import pytest

from ablate import cli

BAD_SPACE = "axes:\n  nonlinearity:\n    choices: [relu, swish]\n"


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"


@pytest.mark.parametrize("argv,message", [
    (["--space", "nope"], "unknown search space 'nope': available: full, pflayer, qlblock"),
    (["--protocol", "mnist"], "unknown protocol 'mnist'"),
    (["--trials", "0"], "--trials must be at least 1"),
    (["--epochs", "0"], "--epochs must be at least 1"),
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
    code, _, err = run_cli(capsys, "--name", "taken")
    assert code == 2 and "--resume" in err
    assert (results_dir / "taken" / "keep.txt").read_text() == "mine"


def test_listings(capsys):
    code, out, _ = run_cli(capsys, "--list-spaces")
    assert code == 0 and {"qlblock", "pflayer", "full"} <= {line.split()[0] for line in out.splitlines()}
    code, out, _ = run_cli(capsys, "--list-protocols")
    assert code == 0 and {"digits", "cifar10", "cifar100", "imagenet-pflayer"} <= {line.split()[0] for line in out.splitlines()}


def test_help_reads_well(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for flag in ("--space", "--protocol", "--trials", "--resume", "--address", "--gpus-per-trial", "--sampler",
                 "--objectives", "--storage", "--no-dashboard", "--list-spaces", "report results/<run>"):
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
    args = cli.build_parser().parse_args(argv)
    settings = cli.settings_from_args(args, results_dir, "test")
    assert [o.metric for o in settings.objectives] == names and settings.objectives_from == source
    assert settings.sampler == ("nsga2" if len(names) > 1 else "tpe")


def test_the_command_line_and_the_api_share_one_set_of_defaults(tmp_path):
    import dataclasses

    from ablate.cli import build_parser, settings_from_args
    from ablate.space import load_space
    from ablate.tune import RunSettings

    args = build_parser().parse_args([])
    fields = {f.name: f.default for f in dataclasses.fields(RunSettings)}
    assert (args.trials, args.confirm, args.seeds) == (fields["trials"], fields["confirm"], fields["seeds"]) == (12, 3, 5)
    from_cli = settings_from_args(args, tmp_path, "python run_ablation.py")
    api = RunSettings(load_space("qlblock"), from_cli.protocol, from_cli.run_dir)
    for name in ("trials", "design", "confirm", "seeds", "seed", "scheduler", "cpus_per_trial", "max_failures"):
        assert getattr(from_cli, name) == getattr(api, name), name
    assert api.design == load_space("qlblock").design == "ablation"  # None: the space file's design
    assert api.trials == 8  # an ablation trains its reference and 7 one-axis variants, whatever --trials says
