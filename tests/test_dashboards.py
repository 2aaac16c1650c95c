"""What the dashboards researchers already open show of a run: optuna-dashboard's API returns every model with its
costs (baselines beside the candidates), and the search study's trials carry their costs as user attributes."""

import io
import json
import math
from pathlib import Path

import optuna
import pandas as pd
import pytest

from ablate.models import BlockConfig
from ablate.protocols import load_protocol
from ablate.space import load_space
from ablate.tune.dashboard import models_study_name, publish_models
from ablate.tune.jobs import Job
from ablate.tune.search import make_searcher
from ablate.tune.settings import RunSettings
from ablate.tune.storage import make_storage
from ablate.tune.trainables import TrialLabel

optuna_dashboard = pytest.importorskip("optuna_dashboard")


def settings_in(run_dir: Path, **kw) -> RunSettings:
    run_dir.mkdir(parents=True)
    return RunSettings(load_space("qlblock"), load_protocol("digits"), run_dir, dashboard=False, **kw)


def row(kind, name, config, seed, phase, status="completed", test_top1=90.0, macs=5.5e6):
    return {"kind": kind, "trial_id": f"{phase}-{name}-s{seed}", "name": name, "config": config, "network": "n",
            "status": status, "reason": "" if status == "completed" else "diverged", "epochs": 3, "val_top1": 91.0,
            "test_top1": test_top1 if status == "completed" else math.nan, "params": 120_000, "macs": macs,
            "elementwise_ops": 1e5, "activations": 2e5, "latency_ms": 2.5, "throughput": 400.0, "seed": seed,
            "phase": phase, "symmetric": True, "node": "abc"}


def api(app, path: str) -> dict:
    """One GET through optuna-dashboard's WSGI app, as its front end makes it."""
    status = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "x", "SERVER_PORT": "80",
               "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http", "SERVER_PROTOCOL": "HTTP/1.1"}
    body = b"".join(app(environ, lambda s, h, *a: status.append(s)))
    assert status[0].startswith("200"), (path, status, body[:300])
    return json.loads(body)


def test_every_model_with_its_costs_through_optuna_dashboards_api(tmp_path):
    settings = settings_in(tmp_path / "run")
    table = pd.DataFrame([
        row("candidate", "multiply-dwconv-w2", "multiply-dwconv-w2", 1, "ablation", test_top1=93.0),
        row("candidate", "relu-dwconv-w2", "relu-dwconv-w2", 1, "ablation", status="failed"),
        row("baseline", "ResNet50", "relu-conv3x3-w1", 1, "ablation", test_top1=88.0, macs=5.0e6),
    ])
    curves = pd.DataFrame({"trial_id": ["ablation-multiply-dwconv-w2-s1"] * 2, "epoch": [1, 2],
                           "val_top1": [80.0, 90.0]})
    name = publish_models(settings, table, curves)
    assert publish_models(settings, table, curves) == name == models_study_name("run")  # rewritten, not added to

    app = optuna_dashboard.wsgi(make_storage(None, settings.run_dir))
    studies = {s["study_name"]: s for s in api(app, "/api/studies")["study_summaries"]}
    study = api(app, f"/api/studies/{studies[name]['study_id']}")
    trials = study["trials"]
    assert len(trials) == 3
    attrs = [{a["key"]: a["value"] for a in t["user_attrs"]} for t in trials]
    by_name = {a["name"]: (t, a) for t, a in zip(trials, attrs)}
    best, best_attrs = by_name["multiply-dwconv-w2"]
    assert best["state"] == "Complete" and [float(v) for v in best["values"]] == [93.0, 5.5e6]
    assert {p["name"]: p["param_internal_value"] for p in best["params"]}  # its axes are the study's parameters
    for key in ("params", "macs", "elementwise_ops", "latency_ms", "test_top1", "phase", "seed"):
        assert key in best_attrs, key
    assert float(best_attrs["val_top1_epoch_2"]) == 90.0
    baseline, baseline_attrs = by_name["ResNet50"]
    assert baseline_attrs["kind"] == "baseline" and baseline["state"] == "Complete" and not baseline["params"]
    assert by_name["relu-dwconv-w2"][0]["state"] == "Fail"
    assert study["objective_names"] == ["test_top1", "macs"]
    assert {t["number"] for t in study["best_trials"]} == {best["number"], baseline["number"]}  # the front


def test_search_trials_keep_their_costs_as_user_attributes(tmp_path):
    settings = settings_in(tmp_path / "run", design="balanced", trials=2)
    searcher = make_searcher(settings, "run")
    searcher.set_search_properties("val_top1", "max", {})
    config = searcher.suggest("t1")
    result = {"epoch": settings.protocol.epochs, "val_top1": 90.0, "macs": 5.5e6, "params": 120_000,
              "elementwise_ops": 1e5, "phase": config["phase"], "seed": settings.seed, "test_top1": 92.5,
              "status": "running"}
    searcher.on_trial_complete("t1", result)
    trial = optuna.load_study(study_name="run", storage=make_storage(None, settings.run_dir)).trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert {k: trial.user_attrs[k] for k in ("macs", "params", "test_top1", "seed", "phase")} == \
        {"macs": 5.5e6, "params": 120_000, "test_top1": 92.5, "seed": settings.seed, "phase": config["phase"]}
    assert "status" not in trial.user_attrs  # a trial's state is Optuna's own


def test_ray_names_each_training_by_what_it_trains():
    block = BlockConfig.parse("multiply-twist-w4")
    assert Job("baseline", "ResNet50", block, 2, "confirm").label == "baseline ResNet50 s2"
    assert Job("candidate", "multiply-twist-w4", block, 3, "confirm").label == "confirm multiply-twist-w4 s3"

    class Trial:
        config = {"nonlinearity": "relu", "spatial": "dwconv", "width": 2, "phase": "design"}
    assert TrialLabel(load_space("qlblock"), 0)(Trial()) == "design relu-dwconv-w2 s0"


def outcome(name="ResNet50", kind="baseline", seed=2, status="completed"):
    curves = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 0.9 / e, "val_top1": 80.0 + e, "lr": 0.1,
               "epoch_seconds": 1.5, "images_per_second": 900.0} for e in (1, 2)]
    return {"row": {**row(kind, name, "relu-conv3x3-w1", seed, "confirm", status=status), "val_top5": 99.0},
            "curves": curves, "predictions": {}}


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in a folder's event files (TFRecord: length, crc, Event proto, crc), read with tensorboardX's
    own protos: tag → [(step, value)] (not the hparams summary, which tensorboardX keeps in a sub-folder)."""
    import struct

    from tensorboardX.proto import event_pb2

    scalars = {}
    for path in folder.glob("events.out.tfevents.*"):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_tensorboard_writes_a_jobs_curve_under_tunes_tags_once(tmp_path):
    from ablate.trackers import TRACKERS

    tracker = TRACKERS["tensorboard"](settings_in(tmp_path / "run"))
    tracker.log_training("baseline ResNet50 s2", outcome())
    tracker.log_training("baseline ResNet50 s2", outcome())  # a resumed run collects it again: written once
    scalars = tensorboard_scalars(tmp_path / "run" / "tensorboard" / "baseline_ResNet50_s2")
    assert sorted(scalars["ray/tune/val_top1"]) == [(1, 81.0), (2, 82.0), (2, 91.0)]  # the curve, then the final
    assert scalars["ray/tune/test_top1"] == [(2, 90.0)]
    assert "tensorboard --logdir" in tracker.where()


def test_mlflow_keeps_each_training_once_with_its_costs(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    from ablate.trackers import TRACKERS

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracker = TRACKERS["mlflow"](settings_in(tmp_path / "results" / "run"))
    tracker.log_training("baseline ResNet50 s2", outcome())
    tracker.log_training("baseline ResNet50 s2", outcome())
    tracker.log_training("confirm relu-dwconv-w2 s3", outcome("relu-dwconv-w2", "candidate", 3, "failed"))
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("run").experiment_id])}
    assert sorted(runs) == ["baseline ResNet50 s2", "confirm relu-dwconv-w2 s3"]
    baseline = runs["baseline ResNet50 s2"]
    assert baseline.info.status == "FINISHED" and runs["confirm relu-dwconv-w2 s3"].info.status == "FAILED"
    assert {k: baseline.data.params[k] for k in ("macs", "params", "seed", "phase", "kind")} == \
        {"macs": "5500000.0", "params": "120000", "seed": "2", "phase": "confirm", "kind": "baseline"}
    assert baseline.data.metrics["test_top1"] == 90.0
    history = client.get_metric_history(baseline.info.run_id, "val_top1")
    assert sorted((m.step, m.value) for m in history) == [(1, 81.0), (2, 82.0), (2, 91.0)]


def test_a_tracker_that_is_not_installed_is_one_line(tmp_path, monkeypatch):
    import importlib.util

    from ablate.core.errors import UsageError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(UsageError,
                       match=r"--tracker wandb needs the wandb package: pip install 'ablate-blocks\[wandb\]'"):
        settings_in(tmp_path / "run", trackers=("wandb",))
    with pytest.raises(UsageError, match="tracker"):
        settings_in(tmp_path / "run2", trackers=("comet",))


def test_a_tracker_that_fails_mid_run_is_turned_off_in_one_line(tmp_path, capsys):
    from ablate.trackers import TRACKERS

    tracker = TRACKERS["tensorboard"](settings_in(tmp_path / "run"))
    broken = outcome()
    broken["curves"] = "not a curve"
    tracker.log_training("baseline ResNet50 s2", broken)
    tracker.log_training("baseline ResNet50 s3", outcome(seed=3))
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "tracker tensorboard failed and is off" in out
    assert not (tmp_path / "run" / "tensorboard" / "baseline_ResNet50_s3").exists()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_every_training_of_a_run_is_in_tensorboard_mlflow_and_the_models_study(local_ray, tmp_path, monkeypatch):
    """A design run (Tune trials) with confirmations and baselines (Ray tasks): one entry per training in each."""
    pytest.importorskip("mlflow")
    from conftest import tiny_space_text
    from mlflow import MlflowClient

    from ablate.results import load
    from ablate.tune import run_ablation

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "tiny.yaml").write_text(tiny_space_text("tiny"))
    run_dir = tmp_path / "results" / "tracked"
    settings = RunSettings(load_space(tmp_path / "tiny.yaml"), load_protocol("digits").with_overrides(epochs=1),
                           run_dir, trials=2, design="balanced", scheduler="none", confirm=1, seeds=1,
                           dashboard=False, trackers=("tensorboard", "mlflow"), max_concurrent=1)
    run_ablation(settings)
    table = load(run_dir)
    labels = {f"{'baseline' if r.kind == 'baseline' else r.phase} {r.name} s{r.seed}" for r in table.itertuples()}
    assert len(labels) == len(table) and set(table["phase"]) >= {"design", "confirm"} and "baseline" in set(table.kind)

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tracked").experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(labels)  # Tune's trials and the Ray tasks alike

    tune_trials = {p.parent for p in (run_dir / "tune").rglob("events.out.tfevents.*")}
    jobs = {p.parent for p in (run_dir / "tensorboard").glob("*/events.out.tfevents.*")}
    assert len(tune_trials) + len(jobs) == len(table)

    study = optuna.load_study(study_name=models_study_name("tracked"), storage=make_storage(None, run_dir))
    assert len(study.trials) == len(table)
    assert {t.user_attrs["kind"] for t in study.trials} == {"candidate", "baseline"}


RAY_NAMES = """
import sys, time, ray
from pathlib import Path
from ray.util.state import list_tasks
from ablate.protocols import load_protocol
from ablate.space import load_space
from ablate.tune import RunSettings, run_ablation
context = ray.init(num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1", log_to_driver=False,
                   logging_level="ERROR")
try:
    run_ablation(RunSettings(load_space(sys.argv[1]), load_protocol("digits").with_overrides(epochs=1),
                             Path(sys.argv[2]), seeds=2, design="ablation", dashboard=False, trackers=()))
    time.sleep(2)
    print("NAMES", sorted({t.name for t in list_tasks(address="http://" + context.dashboard_url, limit=1000)}))
finally:
    ray.shutdown()
"""


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(600)
def test_rays_state_api_lists_each_task_by_what_it_trains(tmp_path):
    import subprocess
    import sys

    from conftest import tiny_space_text

    text = tiny_space_text("tiny", "resnet50") + "design: ablation\nreference: multiply-dwconv-w0.5\n"
    (tmp_path / "tiny.yaml").write_text(text)
    done = subprocess.run([sys.executable, "-c", RAY_NAMES, str(tmp_path / "tiny.yaml"), str(tmp_path / "r" / "run")],
                          capture_output=True, text=True, timeout=540, start_new_session=True)
    line = [row for row in done.stdout.splitlines() if row.startswith("NAMES")]
    assert line, done.stdout[-2000:] + done.stderr[-2000:]
    names = eval(line[0][len("NAMES "):])
    assert "ablation multiply-dwconv-w0.5 s0" in names and "ablation relu-dwconv-w0.5 s1" in names
    assert any(n.startswith("baseline ") and n.endswith(" s1") for n in names)
    assert any(n.startswith("time ") and n.endswith(" models side by side") for n in names)


def test_wandb_writes_one_offline_run_per_training(tmp_path, monkeypatch):
    """W&B is not among the test extras: this runs where it is installed (offline: no account, no network)."""
    pytest.importorskip("wandb")
    from ablate.trackers import TRACKERS

    monkeypatch.setenv("WANDB_MODE", "offline")
    tracker = TRACKERS["wandb"](settings_in(tmp_path / "run"))
    tracker.log_training("baseline ResNet50 s2", outcome())
    tracker.log_training("confirm relu-dwconv-w2 s3", outcome("relu-dwconv-w2", "candidate", 3))
    assert not tracker.broken
    assert len(list((tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb"))) == 2


@pytest.mark.parametrize("argv, trackers", [([], None), (["--tracker", "mlflow", "--tracker", "tensorboard"],
                                                         ("mlflow", "tensorboard")), (["--tracker", "none"], ())])
def test_the_command_line_names_the_trackers(tmp_path, argv, trackers):
    from ablate.cli import build_parser, settings_from_args
    from ablate.trackers import default_trackers

    settings = settings_from_args(build_parser().parse_args(["run", *argv]), tmp_path, "test")
    assert settings.trackers == (default_trackers() if trackers is None else trackers)
    assert RunSettings.from_json(settings.to_json(), settings.run_dir).trackers == settings.trackers  # --resume


def test_a_trial_the_study_already_holds_is_not_updated_again(tmp_path):
    """On resume the study may hold a trial's outcome before Tune reports it (the record told it): the searcher
    must not write user attributes to a finished trial (Optuna raises, and Tune failed the trial for it)."""
    settings = settings_in(tmp_path / "run", design="balanced", trials=2)
    searcher = make_searcher(settings, "run")
    searcher.set_search_properties("val_top1", "max", {})
    config = searcher.suggest("t1")
    searcher.study.tell(0, [90.0])  # what the repair at resume does for a trial whose record holds its outcome
    searcher.on_trial_complete("t1", {"epoch": settings.protocol.epochs, "val_top1": 90.0, "macs": 5.5e6,
                                      "phase": config["phase"]})
    assert searcher.study.trials[0].state == optuna.trial.TrialState.COMPLETE
