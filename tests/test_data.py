import pickle

import numpy as np
import pytest
import torch

from ablate.core.errors import UsageError
from ablate.data import DATASETS, Augmentation, load_dataset
from ablate.data.augment import random_crop, random_hflip
from ablate.data.splits import seeded_split


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def test_registry_names():
    assert set(DATASETS) == {"digits", "cifar10", "cifar100", "imagefolder"}


def test_digits_shapes_dtypes_and_sizes(digits):
    assert digits.num_classes == 10 and digits.input_size == (3, 32, 32)
    sizes = {s: digits.size(s) for s in ("train", "val", "test")}
    assert sizes == {"train": 1294, "val": 144, "test": 359}
    train = digits.splits["train"]
    assert train.images.dtype == torch.uint8 and train.images.shape == (1294, 3, 32, 32)
    assert train.labels.dtype == torch.int64 and set(train.labels.tolist()) == set(range(10))
    images, labels = next(iter(digits.loader("val", 64)))
    assert images.dtype == torch.float32 and images.shape == (64, 3, 32, 32) and labels.shape == (64,)


def test_digits_image_size_option():
    small = load_dataset("digits", image_size=16)
    assert small.input_size == (3, 16, 16) and small.splits["test"].images.shape[1:] == (3, 16, 16)


def pixel_rows(split):
    return {x.numpy().tobytes() for x in split.images}


def test_digits_splits_disjoint_and_complete(digits):
    train, val, test = (pixel_rows(digits.splits[s]) for s in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train) + len(val) + len(test) == 1797


def test_seeded_split_partitions_indices():
    keep, held = seeded_split(100, 0.1, seed=5)
    assert len(held) == 10 and not set(keep) & set(held) and set(keep) | set(held) == set(range(100))


def test_digits_deterministic_per_seed(digits):
    again = load_dataset("digits", seed=0)
    other = load_dataset("digits", seed=1)
    assert torch.equal(again.splits["val"].labels, digits.splits["val"].labels)
    assert torch.equal(again.splits["val"].images, digits.splits["val"].images)
    assert not torch.equal(other.splits["val"].images, digits.splits["val"].images)
    assert torch.equal(other.splits["test"].images, digits.splits["test"].images)  # test split is fixed


def test_training_batches_shuffled_by_generator(digits):
    def first_labels(seed):
        g = torch.Generator().manual_seed(seed)
        return next(iter(digits.loader("train", 128, train=True, generator=g)))[1]

    assert torch.equal(first_labels(3), first_labels(3))
    assert not torch.equal(first_labels(3), first_labels(4))
    batches = list(digits.loader("train", 128, train=True, generator=torch.Generator().manual_seed(0)))
    assert all(len(y) == 128 for _, y in batches) and len(batches) == 1294 // 128


def test_channels_last_batches(digits):
    images, _ = next(iter(digits.loader("val", 16, channels_last=True)))
    assert images.is_contiguous(memory_format=torch.channels_last)


def test_hflip_flips_exactly_the_masked_samples():
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out = random_hflip(images, torch.Generator().manual_seed(0))
    mask = torch.rand(64, generator=torch.Generator().manual_seed(0)) < 0.5
    assert 0 < mask.sum() < 64
    assert torch.equal(out[mask], images[mask].flip(3))
    assert torch.equal(out[~mask], images[~mask])


def test_random_crop_offsets_within_padding():
    n, pad = 256, 4
    images = torch.arange(1, n * 3 * 32 * 32 + 1, dtype=torch.int64).reshape(n, 3, 32, 32)  # all distinct, none 0
    base = torch.nn.functional.pad(images, (pad,) * 4)
    out = random_crop(images, pad, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    seen = set()
    for i in range(n):
        match = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                 if torch.equal(base[i, :, dy:dy + 32, dx:dx + 32], out[i])]
        assert len(match) == 1
        seen.add(match[0])
    assert len(seen) > 40  # offsets spread over the (2p+1)² window


def test_augmented_batch_keeps_shape(digits):
    g = torch.Generator().manual_seed(0)
    images, labels = next(iter(digits.loader("train", 32, train=True, generator=g,
                                             augmentation=Augmentation(crop_padding=4, hflip=True))))
    assert images.shape == (32, 3, 32, 32) and images.dtype == torch.float32 and labels.shape == (32,)


def write_batch(path, n, label_key, seed):
    rng = np.random.default_rng(seed)
    entry = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), label_key: rng.integers(0, 10, n).tolist()}
    with open(path, "wb") as f:
        pickle.dump(entry, f)
    return entry


def test_cifar10_reads_torchvision_pickle_format(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    first = write_batch(folder / "data_batch_1", 20, b"labels", 0)
    for i in range(2, 6):
        write_batch(folder / f"data_batch_{i}", 20, b"labels", i)
    test = write_batch(folder / "test_batch", 10, b"labels", 9)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
    data = load_dataset("cifar10", data_dir=tmp_path, val_fraction=0.2)
    assert data.num_classes == 10 and data.input_size == (3, 32, 32)
    assert (data.size("train"), data.size("val"), data.size("test")) == (80, 20, 10)
    assert torch.equal(data.splits["test"].images, torch.from_numpy(test[b"data"]).reshape(10, 3, 32, 32))
    assert data.splits["test"].labels.tolist() == test[b"labels"]
    all_train = torch.cat([data.splits["train"].images, data.splits["val"].images])
    assert any(torch.equal(x, torch.from_numpy(first[b"data"][0]).reshape(3, 32, 32)) for x in all_train)


def test_cifar100_reads_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    write_batch(folder / "train", 30, b"fine_labels", 0)
    test = write_batch(folder / "test", 10, b"fine_labels", 1)
    data = load_dataset("cifar100", data_dir=tmp_path)
    assert data.num_classes == 100 and data.size("train") + data.size("val") == 30
    assert data.splits["test"].labels.tolist() == test[b"fine_labels"]


def test_missing_cifar_is_a_one_line_usage_error(tmp_path):
    with pytest.raises(UsageError) as err:
        load_dataset("cifar10", data_dir=tmp_path / "nowhere")
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "nowhere") in message
    assert "cifar-10-batches-py" in message and "--data-dir" in message and "--download" in message


def test_unknown_dataset_is_usage_error():
    with pytest.raises(UsageError, match="digits"):
        load_dataset("mnist")


def test_imagefolder_tree(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 10), ("val", 3)):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / cls / f"{i}.png")
    data = load_dataset("imagefolder", data_dir=tmp_path, val_fraction=0.2, image_size=32)
    assert data.num_classes == 2 and (data.size("train"), data.size("val"), data.size("test")) == (16, 4, 6)
    data.splits["train"].num_workers = 0
    images, labels = next(iter(data.loader("train", 8, train=True, generator=torch.Generator().manual_seed(0))))
    assert images.shape == (8, 3, 32, 32) and images.dtype == torch.float32 and labels.shape == (8,)
