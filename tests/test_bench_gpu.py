"""The GPU benchmark's CPU smoke run: every section present, every number finite, no Ray/Optuna/scikit-learn."""

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_bench_gpu

ROOT = Path(__file__).resolve().parents[1]
TITLES = ("Matmul peak", "Trainer vs a plain reference loop", "torch.compile", "Model FLOP utilisation",
          "Latency and throughput", "bf16 training steps of every block", "Trainings packed on one device")
BLOCKED = ("ray", "optuna", "sklearn")  # absent on the GPU machine: the bench must not import them


def blockers(folder: Path) -> Path:
    """Packages that shadow the real ones and fail on import, so that an import of them fails the run."""
    for name in BLOCKED:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(f"raise ImportError('bench_gpu must not import {name}')\n")
    return folder


def table_cells(markdown: str) -> list[str]:
    """Every cell of every markdown table body (header and rule rows left out)."""
    cells = []
    for block in re.findall(r"((?:^\|.*\|\n)+)", markdown, flags=re.M):
        for row in block.strip().splitlines()[2:]:
            cells += [c.strip() for c in row.strip("|").split("|")]
    return cells


@pytest.mark.slow
def test_the_smoke_run_writes_every_section_with_finite_numbers_and_its_targets(tmp_path):
    """One smoke run (~35 s) for both checks: every section, and finite numbers with the targets stated."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blockers(tmp_path / "blockers")), str(ROOT)])}
    out = tmp_path / "bench.md"
    proc = subprocess.run([sys.executable, "benchmarks/bench_gpu.py", "--smoke", "--device", "cpu", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    markdown = out.read_text()
    assert "CPU smoke run" in markdown and "not a performance measurement" in markdown
    for title in TITLES:
        assert re.search(rf"^## .*{re.escape(title)}", markdown, flags=re.M), title
    assert "not run" not in markdown and "skipped" not in markdown and "FAILED" not in markdown

    cells = table_cells(markdown)
    numbers = [float(c) for c in cells if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?|nan|inf|-inf", c)]
    assert len(numbers) > 50 and all(math.isfinite(v) for v in numbers), [c for c in cells if c in ("nan", "inf")]
    assert "Target (eager): trainer ≥ 0.95×" in markdown and "Target (compiled)" in markdown
    assert "compile gain per model: hardball-twist-w1" in markdown
    assert "Target: no non-finite loss in 3 bf16 steps — met: 6 of 6 finite" in markdown
    assert "published latency / R50" in markdown and "| False" not in markdown
    # packing: N concurrent trainer processes, the packing to use and the projected qlblock / cifar10-fast run
    assert re.search(r"packing: N = [12] processes \(`--gpus-per-trial (1|0\.5)`\)", markdown)
    assert re.search(r"projected `python run_ablation.py --space qlblock --protocol cifar10-fast` on this device: "
                     r"\d+\.\d min for its 33 trainings \(16 epochs of 45000 images each", markdown)


def test_the_gpu_setting_runs_on_cpu(monkeypatch, tmp_path):
    """bf16 autocast and channels_last (what the trainer picks on CUDA) forced on CPU through both paths."""
    import torch

    import ablate.training as training

    bench = load_bench_gpu()

    def bf16(protocol, device):
        return training.Precision(torch.bfloat16, torch.amp.GradScaler("cpu", enabled=False))

    for module in (training, sys.modules["gpu_paths"], sys.modules["gpu_sections"]):  # every user of the two rules
        for name, rule in (("choose_precision", bf16),
                           ("uses_channels_last", lambda protocol, device: protocol.channels_last)):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, rule)
    out = tmp_path / "bench.md"
    threads = torch.get_num_threads()
    try:
        assert bench.main(["--smoke", "--device", "cpu", "--sections", "trainer,compile", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    markdown = out.read_text()
    assert markdown.count("bf16 autocast, channels_last") == 2 and "FAILED" not in markdown
    numbers = [float(c) for c in table_cells(markdown) if re.fullmatch(r"[-+]?\d+\.?\d*(e[-+]?\d+)?", c)]
    assert len(numbers) >= 6 * 3 + 7 and all(math.isfinite(v) and v > 0 for v in numbers)
