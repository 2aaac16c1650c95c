"""CIFAR-10 / CIFAR-100 folders in the real on-disk format, and an ImageFolder tree, small enough for CPU tests.

The originals (www.cs.toronto.edu/~kriz/cifar.html, read by torchvision's ``CIFAR10`` / ``CIFAR100``) are python
2 ``cPickle`` dumps at protocol 2 of dicts whose keys and strings are python 2 ``str``: byte strings on the wire
(the SHORT_BINSTRING / BINSTRING opcodes), which python 3 reads as ``bytes`` with ``encoding="bytes"`` and as
``str`` with ``encoding="latin1"`` (torchvision's choice). Python 3's own protocol 2 writes ``bytes`` as
``_codecs.encode(...)`` calls instead, which read back as ``bytes`` either way — so these files are written by a
pickler that emits python 2's opcodes, and name numpy's reconstructor as python 2's numpy did (``numpy.core``).

- ``cifar-10-batches-py/``: ``data_batch_1`` … ``data_batch_5`` and ``test_batch``, each ``{b'batch_label',
  b'labels' (list of int), b'data' (uint8 N × 3072: 1024 red, 1024 green, 1024 blue, each row-major 32 × 32),
  b'filenames'}``, and ``batches.meta`` ``{b'num_cases_per_batch', b'label_names', b'num_vis'}``;
- ``cifar-100-python/``: ``train`` and ``test``, each ``{b'filenames', b'batch_label', b'fine_labels',
  b'coarse_labels', b'data'}``, and ``meta`` ``{b'fine_label_names', b'coarse_label_names'}``.

Every image's red plane is ``RED_STEP × label`` (plus a little noise), so a reader that gets the channel order or
the label order wrong is caught, and a model can learn the labels in one epoch.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

CIFAR10_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
RED_STEP = 2  # red plane of an image of label c: 2c (+ noise 0..1), distinct for all 100 CIFAR-100 labels


class Py2Pickler(pickle._Pickler):
    """Protocol 2 as python 2's cPickle wrote it: every string (keys, names, numpy's dtype codes, the pixel data) as
    python 2 ``str`` (SHORT_BINSTRING / BINSTRING), numpy's reconstructor as ``numpy.core.multiarray``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    def save_ascii_str(self, obj: str) -> None:
        self.save_py2_str(obj.encode("latin1"))  # python 2's numpy named dtypes and byte orders with str too

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_ascii_str

    def save_global(self, obj: object, name: str | None = None) -> None:
        module = getattr(obj, "__module__", None)
        if module == "numpy._core.multiarray" or (module is None and getattr(obj, "__name__", "") == "_reconstruct"):
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def dump_py2(obj: object, path: Path) -> None:
    """``obj`` pickled as python 2's ``cPickle.dump(obj, f, 2)`` did."""
    with open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)


def images_for(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 rows of 3072 in CIFAR's CHW order: red ``RED_STEP × label`` (+ 0..1), green and blue random."""
    n = len(labels)
    red = (RED_STEP * labels[:, None] + rng.integers(0, 2, (n, 1024))).astype(np.uint8)
    green_blue = rng.integers(0, 256, (n, 2048), dtype=np.uint8)
    return np.concatenate([red, green_blue], axis=1)


def batch_dict(labels: np.ndarray, batch_label: bytes, label_keys: tuple[bytes, ...], rng: np.random.Generator,
               start: int) -> dict[bytes, object]:
    entry: dict[bytes, object] = {b"batch_label": batch_label}
    for key in label_keys:
        entry[key] = [int(x) for x in (labels if key != b"coarse_labels" else labels // 5)]
    entry[b"data"] = images_for(labels, rng)
    entry[b"filenames"] = [f"synthetic_image_{start + i:06d}.png".encode() for i in range(len(labels))]
    return entry


def write_cifar10(root: Path, per_batch: int = 300, test: int = 300, seed: int = 0) -> Path:
    """``root/cifar-10-batches-py/`` in the real format: five training batches of ``per_batch`` images, a test
    batch of ``test``, and ``batches.meta``. Returns the batch folder."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(1, 6):
        labels = rng.integers(0, 10, per_batch)
        dump_py2(batch_dict(labels, f"training batch {i} of 5".encode(), (b"labels",), rng, (i - 1) * per_batch),
                 folder / f"data_batch_{i}")
    dump_py2(batch_dict(rng.integers(0, 10, test), b"testing batch 1 of 1", (b"labels",), rng, 0),
             folder / "test_batch")
    dump_py2({b"num_cases_per_batch": per_batch, b"label_names": CIFAR10_NAMES, b"num_vis": 3072},
             folder / "batches.meta")
    return folder


def write_cifar100(root: Path, train: int = 1500, test: int = 300, seed: int = 0) -> Path:
    """``root/cifar-100-python/`` in the real format: ``train``, ``test`` and ``meta`` (fine labels 0..99, coarse
    labels 0..19). Returns the folder."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    keys = (b"fine_labels", b"coarse_labels")
    dump_py2(batch_dict(rng.integers(0, 100, train), b"training batch 1 of 1", keys, rng, 0), folder / "train")
    dump_py2(batch_dict(rng.integers(0, 100, test), b"testing batch 1 of 1", keys, rng, 0), folder / "test")
    dump_py2({b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
              b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]}, folder / "meta")
    return folder


def write_imagefolder(root: Path, classes: int = 4, train_per_class: int = 60, val_per_class: int = 15,
                      size: int = 32, seed: int = 0) -> Path:
    """``root/train/<class>/*.png`` and ``root/val/<class>/*.png`` (ImageNet's layout), images coloured by class.
    Returns ``root``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for c in range(classes):
            folder = root / split / f"class_{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                pixels[..., 0] = 60 * c + rng.integers(0, 8, (size, size))
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root
