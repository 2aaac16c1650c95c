import dataclasses

import pytest

from ablate.data import Augmentation
from ablate.errors import UsageError
from ablate.protocols import SCHEDULES, Protocol, list_protocols, load_protocol, lr_factor

SHIPPED = ["cifar10", "cifar100", "digits", "imagenet-pflayer"]


def test_shipped_protocols_listed():
    assert list_protocols() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_protocol_loads(name):
    p = load_protocol(name)
    assert isinstance(p, Protocol) and p.name == name and p.expected and p.description
    assert isinstance(p.augmentation, Augmentation) and isinstance(p.lr, float)
    assert p.as_dict()["augmentation"] == dataclasses.asdict(p.augmentation)


def test_recipes_match_their_sources():
    pf = load_protocol("imagenet-pflayer")
    assert (pf.dataset, pf.macro, pf.lr, pf.batch_size, pf.weight_decay, pf.schedule, pf.step_epochs, pf.gamma,
            pf.epochs, pf.warmup_epochs, pf.amp) == ("imagefolder", "resnet50", 0.2, 1024, 1e-4, "step", 30, 0.1,
                                                     90, 3.0, True)
    c10 = load_protocol("cifar10")
    assert (c10.macro, c10.lr, c10.batch_size, c10.weight_decay, c10.schedule, c10.nesterov, c10.momentum) == \
        ("cifar-resnet50", 0.1, 128, 5e-4, "cosine", True, 0.9)
    assert c10.augmentation == Augmentation(crop_padding=4, hflip=True) and c10.amp and c10.channels_last


def test_unknown_protocol_lists_available():
    with pytest.raises(UsageError) as err:
        load_protocol("nope")
    assert "digits" in str(err.value) and "cifar10" in str(err.value) and "\n" not in str(err.value)


def write(tmp_path, text, name="mine.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


BASE = "dataset: digits\nmacro: cifar\nepochs: 2\nbatch_size: 16\nlr: 0.1\n"


def test_protocol_from_path(tmp_path):
    p = load_protocol(write(tmp_path, BASE + "augmentation:\n  hflip: false\n"))
    assert p.name == "mine" and p.epochs == 2 and p.augmentation == Augmentation(crop_padding=4, hflip=False)


@pytest.mark.parametrize("extra, key", [
    ("epochz: 3\n", "epochz"),
    ("augmentation:\n  rotate: 3\n", "augmentation.rotate"),
])
def test_unknown_key_names_file_and_key(tmp_path, extra, key):
    path = write(tmp_path, BASE + extra)
    with pytest.raises(UsageError) as err:
        load_protocol(path)
    message = str(err.value)
    assert str(path) in message and key in message and "\n" not in message


@pytest.mark.parametrize("extra, key", [
    ("nesterov: 3\n", "nesterov"),
    ("schedule: linear\n", "schedule"),
    ("optimizer: lion\n", "optimizer"),
    ("val_fraction: 1.5\n", "val_fraction"),
])
def test_invalid_value_names_file_and_key(tmp_path, extra, key):
    path = write(tmp_path, BASE.replace("epochs: 2\n", "") + "epochs: 2\n" + extra)
    with pytest.raises(UsageError) as err:
        load_protocol(path)
    assert str(path) in str(err.value) and key in str(err.value) and "\n" not in str(err.value)


def test_missing_required_key(tmp_path):
    with pytest.raises(UsageError, match="missing key 'lr'"):
        load_protocol(write(tmp_path, BASE.replace("lr: 0.1\n", "")))


def test_with_overrides_validates_and_keeps_the_rest():
    p = load_protocol("digits")
    q = p.with_overrides(epochs=5, lr=1, augmentation={"crop_padding": 0})
    assert (q.epochs, q.lr, q.batch_size) == (5, 1.0, p.batch_size)
    assert q.augmentation == Augmentation(crop_padding=0, hflip=p.augmentation.hflip)
    assert p.epochs != 5  # frozen original untouched
    with pytest.raises(UsageError, match="bogus"):
        p.with_overrides(bogus=1)
    with pytest.raises(UsageError, match="epochs"):
        p.with_overrides(epochs="many")


def schedule_values(name, **kw):
    p = load_protocol("digits").with_overrides(schedule=name, epochs=10, **kw)
    f = lr_factor(p, steps_per_epoch=10)
    return [f(s) for s in range(100)]


def test_schedules_registry_and_shapes():
    assert set(SCHEDULES) == {"cosine", "onecycle", "step"}
    cos = schedule_values("cosine", warmup_epochs=1)
    assert cos[0] == pytest.approx(0.1) and cos[9] == pytest.approx(1.0) and cos[-1] < 0.01
    assert all(a >= b for a, b in zip(cos[10:], cos[11:]))
    step = schedule_values("step", warmup_epochs=0, step_epochs=3, gamma=0.1)
    assert step[29] == 1.0 and step[30] == pytest.approx(0.1) and step[60] == pytest.approx(0.01)
    one = schedule_values("onecycle", warmup_epochs=3)
    assert one[0] == pytest.approx(1 / 25) and max(one) == pytest.approx(1.0) and one[-1] < 0.01
