import math

import numpy as np
import pytest
import torch

from ablate.core.errors import UsageError
from ablate.data import load_protocol_data
from ablate.protocols import load_protocol
from ablate.training import (
    CHECKPOINT_NAME,
    PREDICTIONS_NAME,
    TrainResult,
    read_epoch_log,
    read_predictions,
    train,
)

METRIC_KEYS = {"epoch", "train_loss", "val_loss", "val_top1", "val_top5", "lr", "epoch_seconds", "images_per_second"}


@pytest.fixture(scope="module")
def tiny():
    """8×8 digits and 3 short epochs: enough to exercise every code path in a few seconds."""
    protocol = load_protocol("digits").with_overrides(image_size=8, epochs=3, batch_size=64, warmup_epochs=0.5)
    return protocol, load_protocol_data(protocol, device="cpu")


class Interrupt(Exception):
    pass


@pytest.mark.slow
def test_digits_protocol_trains_resnet_block_to_80_percent():
    seen = []
    result = train("relu-conv3x3-w0.25", "digits", device="cpu", report=seen.append)
    assert isinstance(result, TrainResult) and result.status == "completed" and result.reason == ""
    assert result.val_top1 >= 80, result.history
    assert result.epochs == load_protocol("digits").epochs == len(result.history) == len(seen)
    assert set(seen[0]) == METRIC_KEYS and [m["epoch"] for m in seen] == [1, 2, 3]
    assert 0 <= result.val_top1 <= result.val_top5 <= 100 and 0 <= result.test_top1 <= 100
    assert result.train_seconds > 0 and result.history[-1]["images_per_second"] > 0


def test_non_finite_loss_fails_instead_of_raising(tiny):
    protocol, data = tiny
    result = train("relu-conv3x3-w0.25", protocol.with_overrides(lr=1e30), data=data)
    assert result.status == "failed" and result.reason == "non-finite loss at epoch 1"
    assert result.epochs == 0 and math.isnan(result.test_top1)


def test_resume_after_interruption_matches_uninterrupted_run(tiny, tmp_path):
    protocol, data = tiny
    reference = train("relu-dwconv-w1", protocol, data=data, seed=3)

    def stop_after_two(metrics):
        if metrics["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train("relu-dwconv-w1", protocol, data=data, seed=3, checkpoint_dir=tmp_path, report=stop_after_two)
    assert (tmp_path / CHECKPOINT_NAME).is_file() and not list(tmp_path.glob("*.tmp"))
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=False)["epoch"] == 2

    reported = []
    resumed = train("relu-dwconv-w1", protocol, data=data, seed=3, checkpoint_dir=tmp_path, report=reported.append)
    assert [m["epoch"] for m in reported] == [3]
    assert [m["epoch"] for m in read_epoch_log(tmp_path)] == [1, 2, 3]  # epochs 1-2 trained once, not again
    assert resumed.status == "completed" and resumed.epochs == 3 and len(resumed.history) == 3
    for key in ("val_top1", "val_top5", "val_loss", "test_top1"):
        assert getattr(resumed, key) == pytest.approx(getattr(reference, key), abs=1e-6), key
    for a, b in zip(resumed.history, reference.history):
        assert (a["train_loss"], a["val_loss"], a["lr"]) == pytest.approx((b["train_loss"], b["val_loss"], b["lr"]),
                                                                          abs=1e-6)
    for split in ("val", "test"):  # the same per-image evidence as the uninterrupted run
        assert np.array_equal(resumed.correct[split], reference.correct[split])


def test_a_completed_training_records_which_images_it_got_right(tiny, tmp_path):
    protocol, data = tiny
    result = train("relu-dwconv-w1", protocol, data=data, seed=1, checkpoint_dir=tmp_path)
    assert set(result.correct) == {"val", "test"}
    for split, metric in (("val", result.val_top1), ("test", result.test_top1)):
        hits = result.correct[split]
        assert hits.dtype == bool and len(hits) == data.size(split)
        assert 100 * hits.mean() == pytest.approx(metric)  # the top-1 is the mean of the hits, image by image
    stored = read_predictions(tmp_path)
    assert (tmp_path / PREDICTIONS_NAME).is_file() and not list(tmp_path.glob("*.tmp*"))
    assert all(np.array_equal(stored[s], result.correct[s]) for s in ("val", "test"))
    again = train("relu-dwconv-w1", protocol, data=data, seed=1, checkpoint_dir=tmp_path)  # already complete
    assert again.epochs == 3 and np.array_equal(again.correct["test"], result.correct["test"])
    other = train("relu-dwconv-w1", protocol, data=data, seed=2)  # another seed: other images right or wrong
    assert not np.array_equal(other.correct["val"], result.correct["val"])
    assert read_predictions(tmp_path / "nothing") == {}


def test_checkpoint_of_another_run_is_refused(tiny, tmp_path):
    protocol, data = tiny
    train("relu-maxpool-w0.25", protocol.with_overrides(epochs=1), data=data, checkpoint_dir=tmp_path)
    with pytest.raises(UsageError, match="another run"):
        train("relu-avgpool-w0.25", protocol.with_overrides(epochs=1), data=data, checkpoint_dir=tmp_path)


def test_data_must_match_protocol(tiny):
    _, data = tiny
    with pytest.raises(UsageError, match="8px"):
        train("relu-conv3x3-w0.25", "digits", data=data)


def test_report_exceptions_propagate(tiny):
    protocol, data = tiny

    def boom(metrics):
        raise RuntimeError("scheduler says stop")

    with pytest.raises(RuntimeError, match="scheduler says stop"):
        train("relu-maxpool-w0.25", protocol, data=data, report=boom)


def test_the_trainer_returns_its_model_as_trained(tiny, tmp_path):
    """What measures a trained model (symmetry) takes the model from the trainer, not from a reloaded checkpoint:
    it is the checkpoint's model, in eval mode; a resumed, already finished training returns it too."""
    protocol, data = tiny
    result = train("hardball-dwconv-w0.5", protocol, data=data, checkpoint_dir=tmp_path)
    assert result.model is not None and not result.model.training and "model" not in result.as_dict()
    saved = torch.load(tmp_path / CHECKPOINT_NAME, map_location="cpu", weights_only=False)["model"]
    assert saved.keys() == result.model.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in result.model.state_dict().items())
    again = train("hardball-dwconv-w0.5", protocol, data=data, checkpoint_dir=tmp_path)  # nothing left to train
    assert all(torch.equal(saved[k], v) for k, v in again.model.state_dict().items())
