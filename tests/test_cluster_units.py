"""Token probing without a cluster: the private Ray pieces it relies on are still where it looks, and the probe
leaves the process's environment as it found it (only ``init_ray``, where Ray starts, changes it)."""

from __future__ import annotations

import os

import pytest

from ablate.core.errors import UsageError
from ablate.tune import cluster


def test_ray_still_has_the_private_pieces_token_probing_relies_on():
    internals = cluster.ray_internals()
    assert internals.config is not None, "ray._raylet.Config.initialize moved: update ablate.tune.cluster.ray_internals"
    assert internals.gcs_client is not None, "ray._raylet.GcsClient moved: update ablate.tune.cluster.ray_internals"


def test_the_token_probe_restores_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(cluster.AUTH_MODE, raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "0" * 32)
    seen = []
    monkeypatch.setattr(cluster, "check_token", lambda address: seen.append(os.environ.get(cluster.AUTH_MODE)))
    with pytest.raises(UsageError, match="cannot reach a Ray cluster"):  # nothing listens on port 1
        cluster.check_address("127.0.0.1:1")
    assert cluster.AUTH_MODE not in os.environ and seen == []
    with cluster.token_mode():
        assert os.environ[cluster.AUTH_MODE] == "token"
    assert cluster.AUTH_MODE not in os.environ  # put back as it was
    monkeypatch.setenv(cluster.AUTH_MODE, "disabled")  # a mode the user chose is never touched
    with cluster.token_mode():
        assert os.environ[cluster.AUTH_MODE] == "disabled"
    assert os.environ[cluster.AUTH_MODE] == "disabled"
