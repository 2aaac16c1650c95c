"""A registry a plugin may add to owns its entries: read as a mapping, written only through ``register``."""

import pytest

from ablate.core.errors import AblateError, UsageError
from ablate.core.registry import Registry, lookup


def test_a_registry_takes_new_names_refuses_built_ins_and_other_owners():
    ops = Registry("spatial op", {"dwconv": 1})
    ops.register("shift", 2, "lab.plug")
    assert dict(ops) == {"dwconv": 1, "shift": 2} and ops.owner("shift") == "lab.plug" and ops.owner("dwconv") is None
    ops.register("shift", 3, "lab.plug")  # the same module again (a worker's re-import) replaces its own entry
    assert ops["shift"] == 3
    with pytest.raises(ValueError, match="spatial op 'dwconv' is built in"):
        ops.register("dwconv", 4, "lab.plug")
    with pytest.raises(ValueError, match="already registered by lab.plug"):
        ops.register("shift", 5, "other.plug")
    ops.remove("shift")
    assert list(ops) == ["dwconv"]
    with pytest.raises(ValueError, match="built in and cannot be removed"):
        ops.remove("dwconv")
    with pytest.raises(UsageError, match="unknown spatial op 'shfit': choose one of dwconv"):
        lookup(ops, "shfit", ops.what, UsageError)
    with pytest.raises(TypeError):
        ops["x"] = 1  # no way in but register


def test_every_error_ablate_raises_on_purpose_has_one_root():
    from ablate.core.files import DiskFull
    from ablate.plugins import PluginError
    from ablate.tune.faults import WorkerLost

    for error in (UsageError, DiskFull, PluginError, WorkerLost):
        assert issubclass(error, AblateError), error
