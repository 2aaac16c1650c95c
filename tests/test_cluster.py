"""A real two-node Ray cluster on this machine, with Ray 2.60's token authentication, driven through
``--address HOST:PORT`` the way a user joins an existing cluster.

Both nodes run ``ray start --block`` in process sessions of their own, with a temp dir of their own (so the
``ray_current_cluster`` file other tests' local Ray would find is not touched) and a token of their own (passed as
``RAY_AUTH_TOKEN``, with HOME pointed away from ~/.ray/auth_token); the ``spawn`` fixture kills both sessions
at the end, pass or fail.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import ablate_command, cli_env, free_port, stop_session, tiny_space_text

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent

SPACE = tiny_space_text("cluster", baselines="resnet50")
HEAD_RESOURCE = "abl_head"  # a custom resource only the head node has: what pins the test's CPU holder to it


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


def start_head(ray: str, env: dict, common: list[str], attempts: int = 3) -> tuple[subprocess.Popen, int, Path]:
    """Start the head node on a free port; a port another process took between our check and Ray's bind (the race
    of asking the OS for a free port) makes the head exit, and then it is tried again on fresh ports."""
    for attempt in range(attempts):
        port = free_port()
        temp_dir = Path("/tmp") / f"abl-{port}"  # short: Ray's unix sockets live under it
        head = subprocess.Popen([ray, "start", "--head", "--port", str(port), "--temp-dir", str(temp_dir),
                                 "--include-dashboard", "false", "--dashboard-agent-listen-port", str(free_port()),
                                 "--resources", json.dumps({HEAD_RESOURCE: 1}), *common], env=env,
                                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: _answers(port) or head.poll() is not None, 60, "the head node")
        except TimeoutError:
            stop_session(head)
            raise
        if head.poll() is None and _answers(port):
            return head, port, temp_dir
        stop_session(head)
        shutil.rmtree(temp_dir, ignore_errors=True)
    raise RuntimeError(f"the Ray head node did not start on a free port in {attempts} attempts")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request):
    """A head and a worker node, 1 CPU each, token-protected; yields (address, token, home without a token, a
    folder only the head's machine sees). The worker node runs in a mount namespace of its own (``unshare``) where
    that folder is an empty tmpfs: what a driver writes there, the worker node cannot read, as on a cluster without
    a shared file system (None when this machine has no user namespaces). Module-scoped, so it starts its processes
    itself rather than through the function-scoped ``spawn``; its processes are stopped and Ray's temporary folder
    removed, pass or fail."""
    root = tmp_path_factory.mktemp("cluster")
    driver_only = tmp_path_factory.mktemp("driver-only")
    namespaces = shutil.which("unshare") and subprocess.run(["unshare", "-rm", "true"]).returncode == 0
    token = secrets.token_hex(16)
    home = root / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    ray = str(Path(sys.executable).parent / "ray")
    common = ["--num-cpus", "1", "--disable-usage-stats", "--block"]
    started, temp_dir = [], None
    try:
        head, port, temp_dir = start_head(ray, env, common)
        started.append(head)
        command = [ray, "start", "--address", f"127.0.0.1:{port}", "--dashboard-agent-listen-port",
                   str(free_port()), *common]
        if namespaces:  # the node's own view of the files: driver_only hidden under an empty tmpfs
            command = ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs tmpfs "$0" && exec "$@"', str(driver_only),
                       *command]
        worker = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        started.append(worker)
        wait_for(lambda: _nodes(port, env) >= 2, 60, "the second node")
        yield f"127.0.0.1:{port}", token, home, driver_only if namespaces else None
    finally:
        for proc in started:
            stop_session(proc)
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _nodes(port: int, env: dict) -> int:
    code = ("import ray; ray.init(address='127.0.0.1:%d', logging_level='ERROR'); "
            "print(sum(n['Alive'] for n in ray.nodes()))" % port)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    try:
        return int(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return 0


def _on_worker_node(address: str, token: str, home: Path, code: str) -> str:
    """What ``code`` prints when run as a Ray task on the node without the head's resource."""
    task = ("import contextlib, io, ray; from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy\n"
            f"ray.init(address={address!r}, logging_level='ERROR')\n"
            f"node = next(n['NodeID'] for n in ray.nodes() if n['Alive'] and {HEAD_RESOURCE!r} not in n['Resources'])\n"
            "@ray.remote(num_cpus=0)\n"
            "def run(code):\n"
            "    out = io.StringIO()\n"
            "    with contextlib.redirect_stdout(out):\n"
            "        exec(code, {})\n"
            "    return out.getvalue()\n"
            "print(ray.get(run.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))"
            f".remote({code!r})))")
    env = {**os.environ, "HOME": str(home), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    done = subprocess.run([sys.executable, "-c", task], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def _cli(args, results_dir, spawn, **env):
    """The CLI as a user runs it: no RAY_AUTH_MODE set, the token (if any) as given; a None value unsets."""
    return spawn(ablate_command(*args), cwd=REPO, env=cli_env(results_dir, RAY_AUTH_MODE=None, **env))


@pytest.mark.timeout(420)
def test_a_small_ablation_runs_on_both_nodes_of_a_token_cluster_filing_into_postgresql(cluster, tmp_path, spawn,
                                                                                      postgres):
    """The run folder lives where only the driver's machine sees it (the worker node has an empty folder there):
    the models the worker node trains reach the table through Ray and PostgreSQL, not through files."""
    from ablate.store import query

    address, token, home, driver_only = cluster
    space = tmp_path / "cluster.yaml"
    space.write_text(SPACE)
    results = (driver_only or tmp_path) / "results"
    driver = _cli(["--space", str(space), "--address", address, "--trials", "4", "--epochs", "1", "--design",
                   "balanced", "--confirm", "1", "--seeds", "2", "--name", "two-nodes", "--no-report",
                   "--store", postgres], results, spawn, HOME=str(home), RAY_AUTH_TOKEN=token)
    out, _ = driver.communicate(timeout=360)
    assert driver.returncode == 0, out[-3000:]
    table = pd.read_parquet(results / "two-nodes" / "trials.parquet")
    # design 4, the best under 2 fresh seeds, ResNet50 under the run seed and both fresh seeds
    assert (table["status"] == "completed").all() and len(table) == 4 + 2 + 3
    assert table["node"].nunique() == 2, table[["name", "seed", "node"]]  # trials ran on both nodes
    filed = query(postgres, run="two-nodes")  # every model, the worker node's too, in the store
    assert sorted(zip(filed["config"], filed["seed"])) == sorted(zip(table["config"], table["seed"]))
    if driver_only is None:
        pytest.skip("no user namespaces here: the worker node saw the run folder (the table and store are checked)")
    driver_files = [results / "two-nodes" / name for name in ("run.json", "trials.parquet", "progress.json")]
    assert all(path.exists() for path in driver_files)
    probe = f"import os; print([os.path.exists(p) for p in {list(map(str, driver_files))!r}])"
    seen = _on_worker_node(address, token, home, probe)
    assert seen == "[False, False, False]", seen  # the worker node saw none of the driver's files (only its own)


@pytest.mark.timeout(120)
def test_without_the_token_the_error_says_so_in_one_line_and_leaves_no_run_folder(cluster, tmp_path, spawn):
    address, _, home, _ = cluster
    results = tmp_path / "results"
    driver = _cli(["--space", "qlblock", "--address", address, "--name", "refused"], results, spawn,
                  HOME=str(home), RAY_AUTH_TOKEN=None)
    out, _ = driver.communicate(timeout=90)
    lines = [line for line in out.splitlines() if line.strip()]
    assert driver.returncode == 2, out[-2000:]
    # ablate's own probe of the GCS answered (its wording), not Ray's ~30 s of retries ending in Ray's error
    assert lines[-1].startswith("error: ") and "refused the connection: its authentication token is missing" \
        in lines[-1], out[-2000:]
    assert "Traceback" not in out
    assert not (results / "refused").exists()


PLUGIN = '''
import os
from pathlib import Path

import torch
from torch import nn

import ablate

with open({marker!r}, "a") as marks:  # who imported this module, and from where
    marks.write(f"{{os.getpid()}} {{Path(__file__).resolve()}}\\n")


class Shift(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return torch.roll(x, 1, dims=2)[:, :, ::self.stride, ::self.stride]


@ablate.register_spatial("cshift", weighted=False)
def shift(channels, stride):
    return Shift(stride)
'''

# Holds the head node's only CPU (an actor that needs the head's own resource) while the run trains, so every
# training lands on the second node whatever Ray's scheduler would prefer; prints that node's id once it holds it.
HOLD_HEAD = f"""
import sys, time
import ray

ray.init(address=sys.argv[1], logging_level="ERROR")


@ray.remote(num_cpus=1, resources={{{HEAD_RESOURCE!r}: 1}})
class Hold:
    def node(self):
        return ray.get_runtime_context().get_node_id()


holder = Hold.remote()
head = ray.get(holder.node.remote())
second = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeID"] != head]
print("second node", *second, flush=True)
time.sleep(3600)
"""


def hold_head(address: str, env: dict, spawn) -> str:
    """Start :data:`HOLD_HEAD` (a process of its own; ``spawn`` ends it) and return the second node's id."""
    holder = spawn([sys.executable, "-c", HOLD_HEAD, address], env=env)
    for line in holder.stdout:
        if line.startswith("second node "):
            ids = line.split()[2:]
            assert len(ids) == 1, line
            return ids[0]
    raise AssertionError(f"the head's CPU holder ended without holding it (exit {holder.wait()})")


@pytest.mark.timeout(420)
def test_a_plugin_op_trains_on_the_second_node_from_the_copy_ray_ships(cluster, tmp_path, spawn):
    """The plugin lives outside the package and is installed on no node: Ray's runtime_env ships it, and the
    workers import that copy (its marker line names a path that is not the original file). The head node's CPU is
    held for the run, so both trials train on the second node, started by its own raylet."""
    address, token, home, _ = cluster
    marker = tmp_path / "imports.txt"
    plugin = tmp_path / "lab" / "plug_cluster.py"
    plugin.parent.mkdir()
    plugin.write_text(PLUGIN.format(marker=str(marker)))
    space = tmp_path / "plugin.yaml"
    space.write_text("name: plugin-cluster\nplugins: [lab/plug_cluster.py]\naxes:\n  nonlinearity:\n"
                     "    choices: [relu, multiply]\n  spatial:\n    choices: [cshift]\n  width:\n    choices: [0.5]\n"
                     "macro: {default: cifar-tiny}\nbaselines: []\n")
    second = hold_head(address, {**os.environ, "HOME": str(home), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token},
                       spawn)
    results = tmp_path / "results"
    driver = _cli(["--space", str(space), "--address", address, "--trials", "2", "--epochs", "1", "--design", "grid",
                   "--confirm", "0", "--name", "plugin", "--no-report"], results, spawn, HOME=str(home),
                  RAY_AUTH_TOKEN=token)
    out, _ = driver.communicate(timeout=360)
    assert driver.returncode == 0, out[-3000:]
    table = pd.read_parquet(results / "plugin" / "trials.parquet")
    assert set(table["name"]) == {"relu-cshift-w0.5", "multiply-cshift-w0.5"}
    assert (table["status"] == "completed").all(), table[["name", "status", "reason"]]
    assert set(table["node"]) == {second[:12]}, (second, table[["name", "node"]])  # both trained on the second node
    imports = [line.split(" ", 1)[1] for line in marker.read_text().splitlines()]
    shipped = [path for path in imports if path != str(plugin.resolve())]
    assert shipped and len(imports) >= 2, imports  # the driver's import, then the workers' of Ray's shipped copy
