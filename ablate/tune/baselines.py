"""The reference models of a run (ResNet50, R50-max, R50-hybrid blocks in the run's macro), trained as Ray tasks
beside the trials and cached across runs by protocol, macro, seed and the package's source."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import ray

from ablate.errors import error_summary
from ablate.models import BASELINE_BY_TIMM_NAME, Baseline
from ablate.tune.collect import training_row
from ablate.tune.settings import RunSettings
from ablate.tune.trainables import cost_columns, prepare

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def code_version(root: Path = PACKAGE_ROOT) -> str:
    """Hash of the package's source: a cached baseline is reused only if the code that trained it is unchanged."""
    digest = hashlib.sha1()
    for path in sorted(root.rglob("*.py")) + sorted(root.rglob("*.yaml")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def baseline_cache_key(settings: RunSettings, name: str) -> str:
    """What a cached baseline must match: protocol, macro, seed, baseline and code version."""
    key = json.dumps({"protocol": settings.protocol.as_dict(), "macro": settings.macro, "seed": settings.seed,
                      "baseline": name, "code": code_version()}, sort_keys=True, default=str)
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def baseline_row(baseline: Baseline, settings: RunSettings, **outcome: Any) -> dict[str, Any]:
    """A baseline's table row (see ``collect.training_row``)."""
    return training_row(kind="baseline", trial_id=f"baseline-{baseline.name}", name=baseline.name,
                        block=baseline.block, settings=settings, **outcome)


def train_baseline(baseline: Baseline, settings: RunSettings, state_dir: str) -> dict[str, Any]:
    """One baseline, trained like a candidate (same protocol, macro, seed); resumes from ``state_dir``."""
    protocol, data, device = prepare(settings)
    costs = cost_columns(baseline.block, settings, data, device)
    result = settings.train_fn(baseline.block, protocol, checkpoint_dir=state_dir, seed=settings.seed, data=data,
                               device=device)
    row = baseline_row(baseline, settings, status=result.status, reason=result.reason, history=result.history,
                       costs=costs)
    return {"row": row, "curves": result.history}


class BaselineRunner:
    """Trains the space's baselines as Ray tasks beside the Tune trials, reusing cached results when the key matches."""

    def __init__(self, settings: RunSettings, cache_dir: Path):
        self.settings, self.cache_dir = settings, cache_dir
        self.baselines = [BASELINE_BY_TIMM_NAME[b] for b in settings.space.baselines]
        self.names = [b.name for b in self.baselines]
        self.results: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, Any] = {}

    def _cache_file(self, name: str) -> Path:
        return self.cache_dir / f"{baseline_cache_key(self.settings, name)}.json"

    def start(self, resources: dict[str, float]) -> None:
        remote = ray.remote(train_baseline).options(num_cpus=resources.get("cpu", 1), num_gpus=resources.get("gpu", 0),
                                                     max_retries=self.settings.max_failures)
        for baseline in self.baselines:
            cached = self._cache_file(baseline.name)
            if cached.is_file():
                self.results[baseline.name] = json.loads(cached.read_text())
                continue
            state_dir = self.settings.state_dir(baseline.block, kind="baselines")
            self.pending[baseline.name] = remote.remote(baseline, self.settings, str(state_dir))

    def done_count(self) -> int:
        if self.pending:
            ready, _ = ray.wait(list(self.pending.values()), num_returns=len(self.pending), timeout=0)
            ready = set(ready)
            return len(self.results) + sum(1 for ref in self.pending.values() if ref in ready)
        return len(self.results)

    def collect(self) -> dict[str, dict[str, Any]]:
        """Every baseline's outcome (``row`` and ``curves``); a crashed one is a failed row with its reason, never cached."""
        by_name = {b.name: b for b in self.baselines}
        for name, ref in self.pending.items():
            try:
                outcome = ray.get(ref)
            except Exception as err:  # a crashed baseline is a row with its reason, not a crashed run
                row = baseline_row(by_name[name], self.settings, status="failed", reason=error_summary(err))
                outcome = {"row": row, "curves": []}
            if outcome["row"]["status"] == "completed":
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                self._cache_file(name).write_text(json.dumps(outcome, default=_json_number))
            self.results[name] = outcome
        self.pending = {}
        return self.results


def _json_number(value: Any) -> Any:
    return float(value) if hasattr(value, "__float__") else str(value)
