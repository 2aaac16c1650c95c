"""CIFAR-10, CIFAR-100 and ImageFolder data in their real on-disk formats (``tests/cifar_files.py``): read exactly,
run end to end from the command line on CPU through the report, and a ``--data-dir`` holding the wrong thing is one
line saying what was found and what is expected, exit 2, nothing written."""

from __future__ import annotations

import json
import os
import pickle
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cifar_files import RED_STEP, dump_py2, write_cifar10, write_cifar100, write_imagefolder
from conftest import run_cli, tiny_space_text

from ablate import cli
from ablate.data import load_dataset
from ablate.protocols import CUDA_ONLY, cpu_fallback_line, enabled, load_protocol

REPO = Path(__file__).resolve().parent.parent
PER_BATCH, TEST = 300, 300  # CIFAR-10: 5 × 300 training images, 300 test images
FALLBACK = "[ablate] no GPU for the trainings: "

# cifar10-fast's recipe on another dataset, for the CPU runs: qlblock's macro for a protocol it does not name is
# its default (`cifar`), as for cifar10-fast itself (the shipped cifar100 protocol gets cifar-resnet50, far too big
# for a CPU test)
FAST_ON = """\
dataset: {dataset}
macro: cifar
epochs: 16
batch_size: 512
lr: 0.4
nesterov: true
weight_decay: 5.0e-4
schedule: onecycle
warmup_epochs: 2
label_smoothing: 0.2
augmentation: {augmentation}
amp: true
channels_last: true
compile: true
"""


def fast_protocol(folder: Path, dataset: str) -> Path:
    """cifar10-fast's recipe on ``dataset`` as a YAML file (ImageFolder: 32² images, timm's crop and flip)."""
    path = folder / f"{dataset}-fast.yaml"
    augmentation = "{crop_padding: 0, hflip: true}\nimage_size: 32" if dataset == "imagefolder" else \
        "{crop_padding: 4, hflip: true}"
    path.write_text(FAST_ON.format(dataset=dataset, augmentation=augmentation))
    return path


def red_labels(images: torch.Tensor) -> torch.Tensor:
    """The label each image's red plane encodes (``cifar_files.images_for``)."""
    return images[:, 0].float().mean(dim=(1, 2)).div(RED_STEP).floor().long()


# ---- the formats, read exactly -------------------------------------------------------------------------------------

def test_the_files_are_python2_pickles(tmp_path):
    """The fixture's own check: like the originals, keys read as bytes with encoding='bytes' and as str with
    torchvision's encoding='latin1' (python 3's protocol 2 would give bytes both ways), and ASCII fails."""
    folder = write_cifar10(tmp_path, per_batch=4, test=2)
    with open(folder / "data_batch_1", "rb") as f:
        as_bytes = pickle.load(f, encoding="bytes")
    with open(folder / "data_batch_1", "rb") as f:
        as_latin1 = pickle.load(f, encoding="latin1")
    assert set(as_bytes) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert set(as_latin1) == {"batch_label", "labels", "data", "filenames"}
    assert as_latin1["data"].dtype == np.uint8 and as_latin1["data"].shape == (4, 3072)
    assert as_latin1["batch_label"] == "training batch 1 of 5"
    with open(folder / "batches.meta", "rb") as f:
        assert pickle.load(f, encoding="latin1")["label_names"][0] == "airplane"
    with open(folder / "data_batch_1", "rb") as f, pytest.raises(UnicodeDecodeError):
        pickle.load(f)  # python 3's default (ASCII) fails on the pixel bytes, as on the originals


def test_cifar10_real_format(tmp_path):
    write_cifar10(tmp_path, PER_BATCH, TEST)
    data = load_dataset("cifar10", data_dir=tmp_path)
    assert (data.size("train"), data.size("val"), data.size("test")) == (1350, 150, 300)
    assert data.num_classes == 10 and data.input_size == (3, 32, 32)
    for split in ("train", "val", "test"):  # CHW order and labels kept with their images
        assert torch.equal(red_labels(data.splits[split].images), data.splits[split].labels)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "rb") as f:
        assert data.splits["test"].labels.tolist() == pickle.load(f, encoding="bytes")[b"labels"]


def test_cifar100_reads_the_fine_labels(tmp_path):
    write_cifar100(tmp_path, train=400, test=100)
    data = load_dataset("cifar100", data_dir=tmp_path)
    assert data.num_classes == 100 and data.size("test") == 100
    assert torch.equal(red_labels(data.splits["test"].images), data.splits["test"].labels)
    assert data.splits["train"].labels.max() >= 20  # fine labels (0..99), not the coarse ones (0..19)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_batches_re_pickled_by_python3_still_load(tmp_path, protocol):
    """The reader loads only numpy's arrays, yet a copy re-pickled by python 3 (str keys, ``_codecs.encode`` at
    protocol 2, ``numpy._core`` and out-of-band-free buffers at protocol 5) still loads."""
    folder = write_cifar10(tmp_path, per_batch=6, test=4)
    for path in folder.iterdir():
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        with open(path, "wb") as f:
            pickle.dump(entry, f, protocol=protocol)
    data = load_dataset("cifar10", data_dir=tmp_path)
    assert data.size("test") == 4 and torch.equal(red_labels(data.splits["test"].images), data.splits["test"].labels)


def test_data_dir_may_be_the_batch_folder_itself(tmp_path):
    folder = write_cifar10(tmp_path, per_batch=10, test=10)
    assert load_dataset("cifar10", data_dir=folder).size("test") == 10


def test_imagefolder_val_lacking_classes_keeps_the_labels(tmp_path):
    """val/ without some classes: its labels are still train/'s indices (torchvision would renumber them)."""
    write_imagefolder(tmp_path, classes=4, train_per_class=3, val_per_class=2, size=8)
    for name in ("class_0", "class_1"):
        for image in (tmp_path / "val" / name).iterdir():
            image.unlink()
        (tmp_path / "val" / name).rmdir()
    data = load_dataset("imagefolder", data_dir=tmp_path, image_size=8)
    assert data.num_classes == 4 and sorted(set(data.splits["test"].dataset.targets)) == [2, 3]


def test_cuda_only_settings_fall_back_with_one_line():
    fast = load_protocol("cifar10-fast")
    line = cpu_fallback_line(fast, 0)
    assert line.startswith(FALLBACK) and "\n" not in line
    assert all(name in line for name in CUDA_ONLY.values()) and "cifar10-fast" in line
    assert cpu_fallback_line(fast, 0.5) is None and cpu_fallback_line(load_protocol("digits"), 0) is None
    assert not any(enabled(fast, setting, "cpu") for setting in CUDA_ONLY)
    assert all(enabled(fast, setting, "cuda") for setting in CUDA_ONLY)


# ---- the wrong thing in --data-dir: one line, exit 2, nothing written ----------------------------------------------

def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def pack(folder: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)


def not_extracted(root: Path) -> Path:
    folder = write_cifar10(root / "src", per_batch=2, test=2)
    (root / "data").mkdir()
    pack(folder, root / "data" / "cifar-10-python.tar.gz")
    return root / "data"


def archive_itself(root: Path) -> Path:
    return not_extracted(root) / "cifar-10-python.tar.gz"


def unrelated(root: Path) -> Path:
    for name in ("a.txt", "b.csv", "c.json"):
        (root / name).write_text("x")
    (root / "notes").mkdir()
    return root


def a_pickle_that_runs_code(root: Path) -> Path:
    """data_batch_1 replaced by a pickle that would create a file when loaded: refused before it runs."""
    folder = write_cifar10(root, per_batch=2, test=2)
    payload = pickle.dumps(_Boom(str(root / "ran")), protocol=2)
    (folder / "data_batch_1").write_bytes(payload)
    return root


class _Boom:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def relabelled(root: Path) -> Path:
    """A CIFAR-10 batch with a label CIFAR-10 does not have."""
    folder = write_cifar10(root, per_batch=2, test=2)
    with open(folder / "test_batch", "rb") as f:
        entry = pickle.load(f, encoding="bytes")
    entry[b"labels"] = [3, 10]
    dump_py2(entry, folder / "test_batch")
    return root


def with_cifar100_batch(root: Path) -> Path:
    """A CIFAR-100 batch under a CIFAR-10 name (copied in by hand)."""
    folder = write_cifar10(root, per_batch=2, test=2)
    other = write_cifar100(root / "other", train=2, test=2)
    (folder / "test_batch").write_bytes((other / "test").read_bytes())
    return root


def imagefolder(root: Path, change=None) -> Path:
    write_imagefolder(root, classes=2, train_per_class=2, val_per_class=1, size=8)
    if change:
        change(root)
    return root


def flat_val(root: Path) -> None:
    for image in list((root / "val").rglob("*.png")):
        image.rename(root / "val" / f"{image.parent.name}-{image.name}")
    for folder in (root / "val").iterdir():
        if folder.is_dir():
            folder.rmdir()


def extra_val_class(root: Path) -> None:
    (root / "val" / "class_9").mkdir()


def empty_train_class(root: Path) -> None:
    (root / "train" / "class_5").mkdir()


WRONG = [  # (case, protocol, make the data dir under tmp_path, what the line must say)
    ("nonexistent", "cifar10-fast", lambda r: r / "nowhere", "nowhere does not exist; cifar10 expects "
     "cifar-10-batches-py/ (extracted from cifar-10-python.tar.gz) in it: pass --data-dir DIR"),
    ("empty", "cifar10-fast", lambda r: r, "is empty; cifar10 expects cifar-10-batches-py/"),
    ("archive not extracted", "cifar10-fast", not_extracted,
     "holds cifar-10-python.tar.gz but not cifar-10-batches-py/: extract it first (tar xzf "),
    ("the archive itself", "cifar10-fast", archive_itself, "cifar-10-python.tar.gz is the archive, not a folder: "
     "extract it first"),
    ("CIFAR-100 for CIFAR-10", "cifar10-fast", lambda r: write_cifar100(r, 2, 2).parent,
     "holds CIFAR-100 (cifar-100-python/), which a cifar100 protocol reads; cifar10 expects cifar-10-batches-py/"),
    ("CIFAR-100's folder for CIFAR-10", "cifar10-fast", lambda r: write_cifar100(r, 2, 2),
     "cifar-100-python is CIFAR-100 (cifar-100-python/), which a cifar100 protocol reads; cifar10 expects"),
    ("CIFAR-10 for CIFAR-100", "cifar100", lambda r: write_cifar10(r, 2, 2).parent,
     "holds CIFAR-10 (cifar-10-batches-py/), which a cifar10 protocol reads; cifar100 expects cifar-100-python/"),
    ("the binary version", "cifar10-fast", lambda r: (r / "cifar-10-batches-bin").mkdir() or r,
     "CIFAR-10's binary version (cifar-10-batches-bin/), which ablate does not read"),
    ("unrelated files", "cifar10-fast", unrelated, "holds a.txt, b.csv, c.json and 1 more but not what cifar10 "
     "expects"),
    ("truncated batch", "cifar10-fast", lambda r: truncate(write_cifar10(r, 2, 2) / "data_batch_3") or r,
     "data_batch_3 is not a cifar10 batch (truncated or corrupt: "),
    ("garbage batch", "cifar10-fast",
     lambda r: (write_cifar10(r, 2, 2) / "test_batch").write_bytes(b"<html>not found</html>") and r,
     "test_batch is not a cifar10 batch (truncated or corrupt: UnpicklingError"),
    ("missing batch", "cifar10-fast", lambda r: (write_cifar10(r, 2, 2) / "data_batch_5").unlink() or r,
     "lacks data_batch_5 of cifar10's batches: extract cifar-10-python.tar.gz again"),
    ("a pickle that runs code", "cifar10-fast", a_pickle_that_runs_code,
     "data_batch_1 is not a cifar10 batch (it refers to posix.mkdir, which no CIFAR batch does)"),
    ("a label out of range", "cifar10-fast", relabelled, "test_batch is not a cifar10 batch (labels 3..10, "
     "outside 0..9)"),
    ("a CIFAR-100 batch", "cifar10-fast", with_cifar100_batch, "test_batch is not a cifar10 batch (keys "
     "batch_label, coarse_labels, data, filenames, fine_labels; a cifar10 batch has data and labels)"),
    ("CIFAR-10 for an ImageFolder", "imagefolder", lambda r: write_cifar10(r, 2, 2).parent,
     "holds CIFAR-10 (cifar-10-batches-py/), which a cifar10 protocol reads; imagefolder expects train/ and val/"),
    ("flat val/", "imagefolder", lambda r: imagefolder(r, flat_val), "val holds 2 files but no class folders"),
    ("a val/ class train/ lacks", "imagefolder", lambda r: imagefolder(r, extra_val_class),
     "val has classes that"),
    ("an empty train/ class", "imagefolder", lambda r: imagefolder(r, empty_train_class),
     "train: Found no valid file for the classes class_5"),
]


@pytest.mark.parametrize("case,protocol,make,message", WRONG, ids=[w[0] for w in WRONG])
def test_wrong_data_dir_is_one_line(capsys, tmp_path, monkeypatch, case, protocol, make, message):
    results = tmp_path / "results"
    monkeypatch.setenv("ABLATE_RESULTS_DIR", str(results))
    root = tmp_path / "data"
    root.mkdir()
    data_dir = make(root)
    if protocol == "imagefolder":
        protocol = str(fast_protocol(tmp_path, "imagefolder"))
    code = cli.main(["--space", "qlblock", "--protocol", protocol, "--data-dir", str(data_dir), "--epochs", "1",
                     "--no-dashboard"])
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert message in captured.err, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not results.exists() or not any(results.iterdir())  # no run folder, no cache
    assert not (root / "ran").exists()  # nothing in the data folder ran


# ---- end to end from the command line, on CPU ----------------------------------------------------------------------

def run_command(capsys, monkeypatch, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """The command line in this process, on the session's local Ray (a run's own start-up proves nothing here):
    exit code, stdout, stderr; how long it took is printed (shown with -s)."""
    monkeypatch.setenv("ABLATE_RESULTS_DIR", str(tmp_path / "results"))
    start = time.perf_counter()
    code, out, err = run_cli(capsys, *args, "--name", "run", "--no-dashboard")
    print(f"end to end: {time.perf_counter() - start:.0f} s")
    return code, out, err


def tiny_space(tmp_path: Path) -> str:
    """The tests' tiny space (cifar-tiny macro) without baselines, as a file: a run that reads the data end to end
    and trains one small model, where what is proved is the data's path through Tune and the report."""
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_space_text("tiny", baselines=""))
    return str(path)


def check_run(done: tuple[int, str, str], run: Path, dataset: str, splits: dict[str, int]) -> None:
    """Exit 0, the fallback line once, every model completed on the splits read, the report written."""
    code, out, err = done
    assert code == 0, out[-3000:] + err[-3000:]
    fallback = [line for line in out.splitlines() if line.startswith(FALLBACK)]
    assert len(fallback) == 1 and all(name in fallback[0] for name in CUDA_ONLY.values()), out[-3000:]
    meta = json.loads((run / "run.json").read_text())
    assert meta["protocol"]["dataset"] == dataset and meta["data"] == splits
    trials = pd.read_parquet(run / "trials.parquet")
    assert len(trials) > 0 and (trials["status"] == "completed").all(), trials[["name", "status", "reason"]]
    predictions = pd.read_parquet(run / "predictions.parquet")
    per_model = predictions.groupby(["trial_id", "split"]).size().unstack()
    assert (per_model["test"] == splits["test"]).all() and (per_model["val"] == splits["val"]).all()
    assert (trials["val_top1"].between(0, 100)).all() and trials["test_top1"].notna().all()
    assert (run / "report.md").stat().st_size > 0 and (run / "report.html").stat().st_size > 0


# README's run below trains qlblock's `cifar` macro, which a 2-core CPU trains at ~8-25 images/s (fp32, eager): 20
# images per CIFAR batch (the 5 batches' 100: 90 to train, 10 to validate; 25 to test) and the smallest
# design (one balanced config and the three baselines, one epoch, no confirmation) keep it near half a minute (56 s
# with 40 a batch and 50 to test: the test proves the path, not what the models learn). The ablation design itself (8
# configs and 3 baselines x at least 2 seeds = 22 trainings) took over 6 minutes before its first training ended. The
# CIFAR-100 and ImageFolder runs prove the format's path from the files through Tune's workers to the report: one
# cifar-tiny model each, no baselines.
E2E_PER_BATCH, E2E_TEST = 20, 25
E2E_SPLITS = {"train": 5 * E2E_PER_BATCH * 9 // 10, "val": 5 * E2E_PER_BATCH // 10, "test": E2E_TEST}
SMALL = ("--epochs", "1", "--design", "balanced", "--trials", "1", "--confirm", "0")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cifar10_fast_end_to_end_on_cpu(local_ray, capsys, monkeypatch, tmp_path):
    """``run_ablation.py --space qlblock --protocol cifar10-fast --data-dir …`` on real-format CIFAR-10 files,
    through Tune and the report."""
    write_cifar10(tmp_path / "data", E2E_PER_BATCH, E2E_TEST)
    done = run_command(capsys, monkeypatch, tmp_path, "--space", "qlblock", "--protocol", "cifar10-fast",
                       "--data-dir", tmp_path / "data", *SMALL)
    check_run(done, tmp_path / "results" / "run", "cifar10", E2E_SPLITS)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cifar100_end_to_end_on_cpu(local_ray, capsys, monkeypatch, tmp_path):
    """cifar10-fast's recipe on real-format CIFAR-100 files: one balanced config of the tiny space, 1 epoch, through
    Tune and the report."""
    write_cifar100(tmp_path / "data", train=5 * E2E_PER_BATCH, test=E2E_TEST)
    done = run_command(capsys, monkeypatch, tmp_path, "--space", tiny_space(tmp_path), "--protocol",
                       fast_protocol(tmp_path, "cifar100"), "--data-dir", tmp_path / "data", *SMALL)
    check_run(done, tmp_path / "results" / "run", "cifar100", E2E_SPLITS)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_imagefolder_end_to_end_on_cpu(local_ray, capsys, monkeypatch, tmp_path):
    """cifar10-fast's recipe at 32² on an ImageFolder tree (timm's transforms, DataLoader workers): one balanced
    config of the tiny space, 1 epoch, through Tune and the report."""
    write_imagefolder(tmp_path / "data", classes=4, train_per_class=100, val_per_class=25)
    done = run_command(capsys, monkeypatch, tmp_path, "--space", tiny_space(tmp_path), "--protocol",
                       fast_protocol(tmp_path, "imagefolder"), "--data-dir", tmp_path / "data", *SMALL)
    check_run(done, tmp_path / "results" / "run", "imagefolder", {"train": 360, "val": 40, "test": 100})


def test_epochs_flag_keeps_the_schedule_shape():
    """``--epochs 1`` on cifar10-fast (2 warm-up epochs of 16) was refused ('warmup_epochs must be in [0, epochs)'):
    the warm-up, and a step schedule's step, scale with the epochs."""
    one = load_protocol("cifar10-fast").with_epochs(1)
    assert (one.epochs, one.warmup_epochs, one.schedule) == (1, 0.125, "onecycle")
    pflayer = load_protocol("imagenet-pflayer")
    short = pflayer.with_epochs(pflayer.epochs // 10)
    assert short.step_epochs == pflayer.step_epochs // 10
    assert short.warmup_epochs == pytest.approx(pflayer.warmup_epochs / 10)
