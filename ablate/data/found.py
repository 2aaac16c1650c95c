"""What a data folder holds, in words: the one-line error when ``--data-dir`` is not what the protocol reads.

Each dataset's loader knows where its own files are; when they are not there, :func:`data_dir_problem` looks at
the folder for the layouts users commonly have instead (the download archive not yet extracted, the other CIFAR,
CIFAR's binary or MATLAB version, an ImageFolder tree, the batch folder itself one level too deep) and says what it
found and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SHOWN_ENTRIES = 3  # how many of an unrelated folder's entries the message names


@dataclass(frozen=True)
class Layout:
    """A dataset layout recognised on disk.

    ``folder`` is a folder under the data directory, ``archive`` the file it is extracted from, ``markers`` the
    files (or, ending in ``/``, folders) that all sit in that folder itself — so a data directory pointed one level
    too deep is recognised too. ``reader`` is the dataset that reads the layout (None: ablate reads no such thing).
    """

    what: str
    reader: str | None
    folder: str | None
    archive: str | None
    markers: tuple[str, ...]

    def holds(self, folder: Path) -> bool:
        """Every marker is in ``folder``."""
        return all((folder / m.rstrip("/")).is_dir() if m.endswith("/") else (folder / m).is_file()
                   for m in self.markers)


LAYOUTS: dict[str, Layout] = {
    "cifar10": Layout("CIFAR-10 (cifar-10-batches-py/)", "cifar10", "cifar-10-batches-py", "cifar-10-python.tar.gz",
                      ("data_batch_1", "test_batch")),
    "cifar100": Layout("CIFAR-100 (cifar-100-python/)", "cifar100", "cifar-100-python", "cifar-100-python.tar.gz",
                       ("train", "test", "meta")),
    "cifar10-binary": Layout("CIFAR-10's binary version (cifar-10-batches-bin/), which ablate does not read: get "
                             "the python version, cifar-10-python.tar.gz", None, "cifar-10-batches-bin",
                             "cifar-10-binary.tar.gz", ("data_batch_1.bin", "test_batch.bin")),
    "cifar100-binary": Layout("CIFAR-100's binary version (cifar-100-binary/), which ablate does not read: get the "
                              "python version, cifar-100-python.tar.gz", None, "cifar-100-binary",
                              "cifar-100-binary.tar.gz", ("train.bin", "test.bin")),
    "cifar10-matlab": Layout("CIFAR-10's MATLAB version (cifar-10-batches-mat/), which ablate does not read: get the "
                             "python version, cifar-10-python.tar.gz", None, "cifar-10-batches-mat",
                             "cifar-10-matlab.tar.gz", ("data_batch_1.mat", "test_batch.mat")),
    "imagefolder": Layout("an ImageFolder tree (train/ and val/)", "imagefolder", None, None, ("train/", "val/")),
}


def recognised(root: Path) -> tuple[Layout, str] | None:
    """The first layout found at ``root`` and how (``folder``, ``archive`` or ``itself``), or None."""
    for layout in LAYOUTS.values():
        if layout.folder and (root / layout.folder).is_dir():
            return layout, "folder"
        if layout.archive and (root / layout.archive).is_file():
            return layout, "archive"
        if layout.holds(root):
            return layout, "itself"
    return None


def extract_hint(archive: Path) -> str:
    return f"extract it first (tar xzf {archive} -C {archive.parent})"


def data_dir_problem(root: Path, dataset: str, expected: str, fix: str) -> str:
    """One line: what ``root`` holds instead of ``expected``, and ``fix``.

    Args:
        root: The data directory the user gave.
        dataset: The dataset the protocol reads (a ``LAYOUTS`` key).
        expected: What that dataset needs under ``root``, in words.
        fix: How to fix it, e.g. ``pass --data-dir DIR pointing at the folder that holds it``.

    Returns:
        ``<what was found>; <dataset> expects <expected>: <fix>`` (or the archive's extraction command).
    """
    own = LAYOUTS.get(dataset)
    wanted = f"{dataset} expects {expected}"
    if not root.exists():
        return f"{root} does not exist; {wanted}: {fix}"
    if root.is_file():
        archive = next((layout for layout in LAYOUTS.values() if layout.archive == root.name), None)
        if archive is own and own is not None:
            return f"{root} is the archive, not a folder: {extract_hint(root)} and pass --data-dir {root.parent}"
        what = f"the archive of {archive.what}" if archive is not None else "a file, not a folder"
        return f"{root} is {what}; {wanted}: {fix}"
    found = recognised(root)
    if found is not None:
        layout, how = found
        if layout is own and how == "archive":
            return (f"{root} holds {own.archive} but not {own.folder}/: {extract_hint(root / own.archive)}, "
                    f"or pass --download")
        if layout is not own:
            where = {"folder": f"{root} holds", "archive": f"{root} holds the archive of", "itself": f"{root} is"}[how]
            reader = f", which a {layout.reader} protocol reads" if layout.reader else ""
            return f"{where} {layout.what}{reader}; {wanted}: {fix}"
    entries = sorted(root.iterdir())
    if not entries:
        return f"{root} is empty; {wanted}: {fix}"
    names = ", ".join(e.name + ("/" if e.is_dir() else "") for e in entries[:SHOWN_ENTRIES])
    more = f" and {len(entries) - SHOWN_ENTRIES} more" if len(entries) > SHOWN_ENTRIES else ""
    return f"{root} holds {names}{more} but not what {wanted}: {fix}"
