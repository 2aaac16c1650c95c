"""What a wheel install holds: the package builds into a wheel that carries the shipped spaces and examples, and
from outside the checkout it finds ``--space qlblock`` and ``examples/plugins/shift_glu.yaml`` in itself."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

FIND = """
from ablate.space import load_space
import ablate
print(ablate.__file__)
print(load_space("qlblock").path)
print(load_space("examples/plugins/shift_glu.yaml").path)
"""


@pytest.mark.timeout(300)
def test_a_wheel_ships_the_spaces_and_examples_and_finds_them_from_anywhere(tmp_path):
    source = tmp_path / "source"
    for part in ("ablate", "search_spaces", "examples"):
        shutil.copytree(REPO / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / part, source / part)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True, timeout=240)
    (wheel,) = (tmp_path / "dist").glob("ablate_blocks-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"ablate/search_spaces/{p.name}" for p in (REPO / "search_spaces").glob("*.yaml")} | \
        {f"ablate/examples/plugins/{p.name}" for p in (REPO / "examples" / "plugins").iterdir()
         if p.suffix in (".py", ".yaml")}
    assert shipped <= names and "ablate/resources/records/digits.json" in names

    target, elsewhere = tmp_path / "installed", tmp_path / "elsewhere"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True,
                   capture_output=True, timeout=120)
    elsewhere.mkdir()
    found = subprocess.run([sys.executable, "-c", FIND], cwd=elsewhere, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(target)})
    assert found.returncode == 0, found.stderr[-2000:]
    package, space, example = map(Path, found.stdout.split())
    assert package.parent == target / "ablate"
    assert space == target / "ablate" / "search_spaces" / "qlblock.yaml"
    assert example == target / "ablate" / "examples" / "plugins" / "shift_glu.yaml"
