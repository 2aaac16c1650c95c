"""Planning before training: the noise model from recorded models, the designs' costs and detectable differences, the
``plan`` command, and a plan held to the run it planned (its trainings and times carried into the run, its detectable
differences within ±25 % of the report's)."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
from conftest import ablate_command, cli_env

from ablate.analysis.verdicts import detectable_difference
from ablate.core.errors import UsageError
from ablate.planning import plan_line, plan_run
from ablate.planning.command import parse_budget
from ablate.planning.history import shipped_record
from ablate.planning.noise import NoiseModel, estimate
from ablate.protocols import load_protocol
from ablate.space import load_space
from ablate.tune import RunSettings

REPO = Path(__file__).resolve().parent.parent
DIGITS_SPLITS = {"train": 1136, "val": 302, "test": 359}


def test_the_noise_model_of_the_recorded_digits_models():
    frame, source = shipped_record(load_protocol("digits"), "cifar", DIGITS_SPLITS)
    noise = estimate([frame], source)
    assert "digits models recorded" in noise.source and noise.n_images == 359
    assert noise.dispersion_df == 98 and 0 < noise.dispersion < 0.02  # Σ (S − 1) over the 13 recorded configs
    assert 0 < noise.image_one_axis < noise.image  # configs one axis apart are more alike on the images
    # by hand: two configs at p̄ with S seeds each on N images
    v = noise.accuracy * (1 - noise.accuracy)
    se, df = noise.comparison(5, 5)
    assert se == pytest.approx(100 * math.sqrt(2 * noise.dispersion * v / 5 + noise.image * v / 359))
    assert 8 <= df <= 358
    # another recipe, macro or data is not this record's
    assert shipped_record(load_protocol("digits").with_overrides(epochs=4), "cifar", DIGITS_SPLITS) is None
    assert shipped_record(load_protocol("digits"), "cifar-tiny", DIGITS_SPLITS) is None


def test_more_seeds_detect_less_and_cost_more():
    noise = NoiseModel(0.003, 60, 0.3, 0.1, 0.92, 359, "test")
    found = []
    for seeds in (3, 5, 8):
        se, df = noise.comparison(seeds, seeds)
        found.append(detectable_difference(se, df, 0.05 / 10))
    assert found[0] > found[1] > found[2] > 0


def _settings(tmp_path, **kw):
    space = load_space("qlblock")
    return RunSettings(space, load_protocol("digits"), tmp_path / "run", dashboard=False, **kw)


def test_a_plan_of_the_default_ablation_from_the_record(tmp_path):
    plan = plan_run(_settings(tmp_path), tmp_path, designs=("balanced", "grid"), seed_counts=(3, 8))
    assert plan.chosen.label == "ablation, 5 seeds" and plan.chosen.trainings == (8 + 3) * 5
    assert plan.chosen.family == 7 + 3 and set(plan.chosen.detectable) == {"ablation row", "reference vs baseline"}
    assert 2.0 < plan.chosen.detectable["ablation row"] < 8.0
    assert len(plan.seconds) == 11 and all(s > 0 for s in plan.seconds.values())  # each model timed here
    by_label = {p.label: p for p in plan.alternatives}
    three, eight = by_label["ablation, 3 seeds"], by_label["ablation, 8 seeds"]
    assert three.detectable["ablation row"] > plan.chosen.detectable["ablation row"] > eight.detectable["ablation row"]
    assert three.seconds < plan.chosen.seconds < eight.seconds
    assert "grid 36, best 3 × 5 seeds" in by_label and "axis effect" in by_label["grid 36, best 3 × 5 seeds"].detectable
    line = plan_line(plan)
    assert line.startswith("[ablate] plan: ablation, 5 seeds, 55 trainings, ≈ ") and "per ablation row" in line
    assert json.loads(json.dumps(plan.as_dict()))["detectable"]["ablation row"] > 0  # what run.json keeps


def test_budgets_and_bad_plan_flags(tmp_path):
    assert parse_budget("90s") == 90 and parse_budget("10m") == 600 and parse_budget("3h") == 10800
    assert parse_budget("2.5") == 150
    for bad in ("soon", "-3m", "0"):
        with pytest.raises(UsageError, match="--budget"):
            parse_budget(bad)
    out = subprocess.run(ablate_command("plan", "--budget", "soon"), capture_output=True, text=True, cwd=tmp_path,
                         timeout=120)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and "--budget 'soon'" in out.stderr
    assert "Traceback" not in out.stderr


PLANNED_SPACE = """\
name: planned
design: ablation
reference: multiply-maxpool-w0.5
axes:
  nonlinearity:
    choices: [relu, multiply, hardball]
  spatial:
    choices: [maxpool, dwconv]
  width:
    choices: [0.5, 1]
macro: cifar-tiny
"""


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(900)
def test_a_plan_holds_to_the_run_it_planned(tmp_path):
    """A small ablation from the command line (4 variants and 3 baselines × 5 seeds, cifar-tiny on digits, one
    epoch): the plan's pilot measures the protocol's noise and its models' times; the run that follows prints its
    plan first, trains the trainings it planned, its plan's minutes are the schedule of the pilot's and the timed
    models' seconds on the run's workers (no wall clock is compared: a loaded machine stretches every training), and
    its report's detectable differences are within ±25 % of the planned ones."""
    from ablate.core.files import read_table
    from ablate.planning.command import pilot_configs
    from ablate.planning.history import earlier_runs, median_fixed
    from ablate.planning.pilot import run_pilot
    from ablate.planning.timing import wall_seconds
    from ablate.report.data import load_run

    space_path = tmp_path / "planned.yaml"
    space_path.write_text(PLANNED_SPACE)
    space = load_space(space_path)
    protocol = load_protocol("digits").with_epochs(1)  # what --epochs 1 runs: the plan holds at any recipe
    results = tmp_path / "results"
    settings = RunSettings(space, protocol, results / "run", dashboard=False)
    assert plan_run(settings, results) is None  # nothing known of digits on cifar-tiny: a pilot first
    assert [str(c) for c in pilot_configs(settings)] == ["multiply-maxpool-w0.5", "relu-maxpool-w0.5",
                                                          "relu-conv3x3-w0.25"]  # the reference, a variant, ResNet50
    run_pilot(pilot_configs(settings), protocol, "cifar-tiny", DIGITS_SPLITS, results, workers=2, seeds=5)
    pilot = earlier_runs(results, protocol, "cifar-tiny", DIGITS_SPLITS)
    out = subprocess.run(ablate_command("--space", space_path, "--seeds", "5", "--epochs", "1", "--name", "run",
                                        "--no-dashboard", "--no-report"),
                         capture_output=True, text=True, cwd=tmp_path, env=cli_env(results), timeout=750,
                         start_new_session=True)
    assert out.returncode == 0, out.stderr[-2000:]
    plan_line_printed = out.stdout.splitlines()[1]
    assert plan_line_printed.startswith("[ablate] plan: ablation, 5 seeds, 40 trainings")
    assert "pilot-digits-cifar-tiny" in plan_line_printed
    meta = json.loads((results / "run" / "run.json").read_text())
    plan = meta["plan"]
    # the trainings it planned are the ones it trained
    trained = read_table(results / "run" / "trials.parquet")
    assert plan["trainings"] == len(trained) == 40 and (trained["status"] == "completed").all(), trained["reason"]
    assert set(plan["seconds"]) == set(trained["config"]) and len(plan["seconds"]) == 8
    # its times: the pilot's three configs as the pilot measured them, the other five timed here
    assert plan["time"].startswith("3 configs' times from earlier runs, 5 configs timed here"), plan["time"]
    for config, seconds in pilot.seconds.items():
        assert plan["seconds"][config] == pytest.approx(seconds, abs=0.01), (config, plan["seconds"])
    # its minutes: those seconds, every config 5 times, the longest first, on the plan's 2 workers, plus the 8
    # configs' side-by-side timing and the pilot's fixed seconds
    trainings = sorted([s for s in plan["seconds"].values() for _ in range(5)], reverse=True)
    assert plan["minutes"] == pytest.approx(wall_seconds(trainings, 2, 8, median_fixed(pilot)) / 60, abs=0.02)
    achieved = load_run(results / "run").verdicts.groupby("kind")["detectable"].median()
    planned = plan["detectable"]
    assert planned["ablation row"] == pytest.approx(achieved["ablation"], rel=0.25), (planned, achieved)
    assert planned["reference vs baseline"] == pytest.approx(achieved["reference"], rel=0.25), (planned, achieved)
