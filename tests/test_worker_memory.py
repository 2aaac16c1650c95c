"""What a Ray worker imports: each worker process pays for every package its modules pull in, whether it uses it or
not (``benchmarks/worker_memory.py`` measures how much). Each check runs in a fresh interpreter and reads
``sys.modules``; none asserts a number of megabytes, which the machine and its load would move."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

# Never needed while a model trains: the searcher, plotting, scikit-learn (the digits are read from its csv), and
# pandas (a worker files its model as JSON; tables are the driver's) — unless W&B is installed, which timm imports
# and which imports pandas itself
NEVER = ("optuna", "sklearn", "matplotlib", "seaborn", *(() if importlib.util.find_spec("wandb") else ("pandas",)))

WORKER_IMPORTS = {
    # a Ray task (baseline, confirmation, ablation model) unpickles ablate.tune.jobs.train_job: no Tune, and no
    # statistics (the analysis and planning packages load their submodules on first use)
    "import ablate.tune.jobs": (*NEVER, "ray.tune", "scipy", "statsmodels"),
    # the memory probe and the side-by-side timer, run on workers before and after the trainings
    "import ablate.planning.timing, ablate.tune.timing": (*NEVER, "ray.tune", "scipy", "statsmodels"),
    # the worker's own module, which the Ray task imports too: no Tune, no statistics
    "import ablate.tune.trainables": (*NEVER, "ray.tune", "scipy", "statsmodels"),
    # the digits as a worker loads them, and a model built for them
    "from ablate.data import load_protocol_data; from ablate.protocols import load_protocol; "
    "from ablate.models import BlockConfig, build_model; "
    "data = load_protocol_data(load_protocol('digits'), device='cpu'); "
    "build_model(BlockConfig.parse('multiply-dwconv-w2'), 'cifar', data.num_classes)": (*NEVER, "scipy", "ray.tune"),
}


def loaded_after(code: str, names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` a fresh interpreter has imported once it has run ``code``."""
    probe = f"import sys, json\n{code}\nprint(json.dumps([n for n in {names!r} if n in sys.modules]))"
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", probe], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("code", list(WORKER_IMPORTS), ids=["jobs", "timing", "trainables", "digits-model"])
def test_worker_path_imports_no_heavy_module_it_does_not_need(code):
    assert loaded_after(code, WORKER_IMPORTS[code]) == []


def test_the_probe_sees_a_heavy_import():
    """The check above can fail: a module that imports one of them is caught."""
    assert loaded_after("import optuna.samplers", NEVER) == ["optuna"]


def test_digits_read_without_sklearn_are_load_digits_exactly():
    from sklearn.datasets import load_digits

    from ablate.data.sources import read_digits

    pixels, labels = read_digits()
    bunch = load_digits()
    assert pixels.dtype == np.uint8 and labels.dtype == np.int64
    assert np.array_equal(pixels, bunch.data) and np.array_equal(labels, bunch.target)


@pytest.mark.parametrize("forget", [False, True], ids=["killed as it was", "set up as a worker"])
def test_a_worker_killed_by_ray_leaves_no_wandb_folder_in_tmp(tmp_path, forget):
    """timm imports W&B where it is installed, and W&B makes two temporary folders at import that it removes only
    at interpreter exit; Ray ends its workers with a signal (here: ``os._exit``). A worker set up by ``prepare``
    leaves none behind; one that is not leaves both (the check can fail)."""
    pytest.importorskip("wandb")
    code = ("import os, ablate.tune.trainables as t\n"
            + ("t.forget_wandb_temp_dirs()\n" if forget else "")
            + "os._exit(0)")
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    left = sorted(p.name for p in tmp_path.iterdir() if "wandb" in p.name)
    assert (left == []) if forget else (len(left) == 2), left
