"""Your own block parts: registration checks each part's contract on a dummy tensor, a malformed plugin is one line
(exit 2, nothing written), and a small ablation on the local Ray trains a spatial op and a nonlinearity from a
module outside the package, with costs, symmetry, a report and the baseline cache keyed on the plugin's source."""

import sys
import textwrap

import pandas as pd
import pytest
import timm
import torch
from conftest import cli_error
from torch import nn

import ablate
from ablate.models import NONLINEARITIES, SPATIAL_OPS, BlockConfig, build_model
from ablate.plugins import PluginError, load_plugin, runtime_env
from ablate.protocols import load_protocol
from ablate.report import build_report
from ablate.space import load_space
from ablate.tune import RunSettings, baseline_cache_key, run_ablation

# A plugin as a user writes it: a weight-free cyclic shift (spatial) and a gated linear unit (nonlinearity); fvcore
# counts neither torch.roll (it moves memory only) nor aten::glu (a sigmoid and a product per element).
PLUGIN = '''
import torch
from torch import nn

import ablate


class Shift(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        y = torch.cat([torch.roll(a, 1, dims=2), torch.roll(b, -1, dims=3)], dim=1)
        return y[:, :, ::self.stride, ::self.stride]


@ablate.register_spatial("{spatial}", weighted=False)
def shift(channels, stride):
    """Half the channels moved down, half left (cyclic), then subsampled."""
    return Shift(stride)


@ablate.register_nonlinearity("{nonlinearity}", conv1_factor=2, positions=("inner",), init="linear")
def gate(channels):
    """Gated linear unit after conv1."""
    return nn.GLU(dim=1)
'''


def write_plugin(folder, module, spatial, nonlinearity, body=PLUGIN):
    path = folder / f"{module}.py"
    path.write_text(body.format(spatial=spatial, nonlinearity=nonlinearity))
    return path


@pytest.fixture(autouse=True)
def registries():
    """Every test leaves the registries and sys.modules as it found them (the parts are process-wide)."""
    saved = [(registry, {name: (registry[name], registry.owner(name)) for name in registry})
             for registry in (SPATIAL_OPS, NONLINEARITIES)], set(sys.modules)
    yield
    for registry, before in saved[0]:
        for name in set(registry) - set(before):
            registry.remove(name)
        for name, (entry, owner) in before.items():
            if owner is not None and registry[name] is not entry:
                registry.remove(name)
                registry.register(name, entry, owner)
    for name in set(sys.modules) - saved[1]:
        if name.startswith("plug_"):
            del sys.modules[name]


class Scale(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


@pytest.mark.parametrize("factory,problem", [
    (lambda c, s: nn.Conv2d(c, 2 * c, 3, s, 1), "gives shape (2, 16, 8, 8), expected (2, 8, 8, 8)"),
    (lambda c, s: nn.Identity(), "factory(8, stride=2) on a (2, 8, 8, 8) tensor gives shape (2, 8, 8, 8), expected "
                                 "(2, 8, 4, 4)"),  # the op must carry the block's stride
    (lambda c, s: Scale(float("inf")), "gives a non-finite output"),
    (lambda c, s: 3, "its factory returned int, not a torch.nn.Module"),
    (lambda c: nn.Identity(), "raised TypeError"),  # the wrong signature
])
def test_a_spatial_op_that_breaks_its_contract_is_refused_in_one_line(factory, problem):
    with pytest.raises(PluginError) as err:
        ablate.register_spatial("broken")(factory)
    message = str(err.value)
    assert message.startswith("spatial op 'broken': ") and problem in message and "\n" not in message
    assert "broken" not in SPATIAL_OPS


def test_a_nonlinearity_is_probed_at_each_of_its_positions():
    with pytest.raises(PluginError, match=r"at inner on a \(2, 8, 8, 8\) tensor gives shape \(2, 4, 8, 8\)"):
        ablate.register_nonlinearity("halves")(lambda c: nn.GLU(dim=1))  # GLU halves: it needs conv1_factor=2
    ablate.register_nonlinearity("halves", conv1_factor=2, positions=("inner",))(lambda c: nn.GLU(dim=1))
    scheme = NONLINEARITIES["halves"]
    assert scheme.conv1_factor == 2 and isinstance(scheme.out(8, True), nn.Identity)
    with pytest.raises(PluginError, match="positions must be some of inner, after_spatial, out"):
        ablate.register_nonlinearity("nowhere", positions=("before",))(nn.ReLU)


@pytest.mark.parametrize("register,name,problem", [
    (ablate.register_spatial, "maxpool", "spatial op 'maxpool' is built in; register yours under another name"),
    (ablate.register_nonlinearity, "relu", "nonlinearity 'relu' is built in"),
    (ablate.register_spatial, "my-op", "must be lower-case letters, digits and _"),
])
def test_a_name_that_is_built_in_or_malformed_is_refused(register, name, problem):
    with pytest.raises(PluginError, match=problem):
        register(name)(lambda *args: nn.Identity())


def test_a_registered_part_builds_through_ablate_and_timm_and_is_traced(tmp_path):
    load_plugin(str(write_plugin(tmp_path, "plug_build", "pshift", "pgate")))
    model = build_model("pgate-pshift-w1", "cifar", 10).eval()
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    through_timm = timm.create_model("resnet50_max", block="pgate-pshift-w1", num_classes=7).eval()
    assert through_timm(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    traced = torch.jit.script(torch.fx.symbolic_trace(model))  # timm's fx → TorchScript path
    torch.testing.assert_close(traced(x), model(x))
    assert BlockConfig.parse("pgate-pshift-w1").spatial == "pshift"


BAD_SHAPE = '''
import ablate
from torch import nn

@ablate.register_spatial("{spatial}")
def widen(channels, stride):
    return nn.Conv2d(channels, channels + 1, 3, stride, 1)
'''
IMPORT_ERROR = "import ablate\nimport no_such_package_anywhere\n"
CLASH = ('import ablate\nfrom torch import nn\n\n@ablate.register_spatial("dwconv")\n'
         'def mine(c, s):\n    return nn.Identity()\n')


@pytest.mark.parametrize("body,problem", [
    (BAD_SHAPE, "spatial op 'pwide': factory(8, stride=1) on a (2, 8, 8, 8) tensor gives shape (2, 9, 8, 8), "
                "expected (2, 8, 8, 8)"),
    (IMPORT_ERROR, "cannot import it: ModuleNotFoundError: No module named 'no_such_package_anywhere'"),
    (CLASH, "spatial op 'dwconv' is built in; register yours under another name"),
    ("import ablate\ndef broken(:\n", "cannot import it: SyntaxError"),
])
def test_a_malformed_plugin_is_one_line_exit_2_and_nothing_written(capsys, results_dir, tmp_path, body, problem):
    path = tmp_path / "plug_bad.py"
    path.write_text(body.format(spatial="pwide"))
    line = cli_error(capsys, "--plugin", str(path), "--trials", "2")
    assert line.startswith(f"error: plugin {path}: ") and problem in line, line
    assert not results_dir.exists()  # no run folder, no cache
    assert "plug_bad" not in sys.modules  # a failed import leaves no half module behind


def test_a_missing_plugin_and_a_space_that_names_a_broken_one_say_where(capsys, results_dir, tmp_path):
    missing = cli_error(capsys, "--plugin", str(tmp_path / "nowhere.py"))
    assert "plugin " in missing and "nowhere.py: no such file" in missing
    assert "no module named 'plug_absent'" in cli_error(capsys, "--plugin", "plug_absent")
    (tmp_path / "plug_shape.py").write_text(BAD_SHAPE.format(spatial="pwide"))
    space = tmp_path / "space.yaml"
    space.write_text("name: broken\nplugins: [plug_shape.py]\naxes:\n  spatial:\n    choices: [pwide]\n")
    line = cli_error(capsys, "--space", str(space))
    assert line.startswith(f"error: {space}:2: plugin plug_shape.py: spatial op 'pwide'"), line
    space.write_text("name: unnamed\naxes:\n  spatial:\n    choices: [pwide]\n")  # the op without its plugin
    assert "invalid value 'pwide' for axis 'spatial'" in cli_error(capsys, "--space", str(space))
    assert not results_dir.exists()


def test_settings_round_trip_through_run_json_with_their_plugins(tmp_path):
    plugin = load_plugin(str(write_plugin(tmp_path, "plug_trip", "tshift", "tgate")))
    space_file = tmp_path / "space.yaml"
    space_file.write_text("name: trip\nplugins: [plug_trip.py]\naxes:\n  spatial:\n    choices: [dwconv, tshift]\n")
    settings = RunSettings(load_space(space_file), load_protocol("digits").with_overrides(epochs=2), tmp_path / "run",
                           trials=2, seed=3, plugins=(plugin,), confirm=0, command="python run_ablation.py …")
    back = RunSettings.from_json(settings.to_json(), settings.run_dir)
    assert back == settings and back.every_plugin == (plugin,)
    assert runtime_env(back.every_plugin) == {"py_modules": [str(tmp_path / "plug_trip.py")]}
    assert runtime_env(()) is None
    key = baseline_cache_key(settings, "ResNet50")
    (tmp_path / "plug_trip.py").write_text((tmp_path / "plug_trip.py").read_text() + "\n# edited\n")
    edited = RunSettings.from_json(settings.to_json(), settings.run_dir)  # the same module, already imported …
    assert baseline_cache_key(edited, "ResNet50") == key  # … so the same source hash within this process
    sys.modules.pop("plug_trip")
    assert baseline_cache_key(RunSettings.from_json(settings.to_json(), settings.run_dir), "ResNet50") != key


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_small_ablation_trains_a_plugins_ops_with_costs_symmetry_and_a_report(local_ray, tmp_path, capsys):
    folder = tmp_path / "my_lab"  # outside the package, not on sys.path
    folder.mkdir()
    write_plugin(folder, "plug_e2e", "eshift", "egate")
    space_file = tmp_path / "mine.yaml"
    space_file.write_text(textwrap.dedent("""\
        name: mine
        plugins: [my_lab/plug_e2e.py]
        axes:
          nonlinearity:
            choices: [relu, egate]
          spatial:
            choices: [dwconv, eshift]
          width:
            choices: [0.5]
        macro: {default: cifar-tiny}
        baselines: [resnet50]
        """))
    run_dir = tmp_path / "results" / "mine"
    settings = RunSettings(load_space(space_file), load_protocol("digits").with_overrides(epochs=2), run_dir,
                           trials=4, design="grid", scheduler="none", confirm=0, dashboard=False,
                           max_concurrent=1)
    run_ablation(settings)
    assert "warning: egate-" in capsys.readouterr().out  # fvcore cannot count aten::glu: said, not counted free
    table = pd.read_parquet(run_dir / "trials.parquet").set_index("name")
    assert set(table.index) == {"relu-dwconv-w0.5", "relu-eshift-w0.5", "egate-dwconv-w0.5", "egate-eshift-w0.5",
                                "ResNet50"}
    assert (table["status"] == "completed").all(), table[["status", "reason"]]
    mine = table.loc[["relu-eshift-w0.5", "egate-dwconv-w0.5", "egate-eshift-w0.5"]]
    assert (mine["macs"] > 0).all() and mine["latency_ms"].notna().all() and mine["symmetric"].notna().all()
    assert table.loc["egate-eshift-w0.5", "uncounted_ops"].startswith("aten::glu ×")
    assert table.loc["relu-eshift-w0.5", "uncounted_ops"] == ""  # a shift moves memory: nothing left uncounted
    assert table.loc["relu-eshift-w0.5", "macs"] < table.loc["relu-dwconv-w0.5", "macs"]  # no 3×3 MACs at all
    report = build_report(run_dir).markdown.read_text()
    assert "egate-eshift-w0.5" in report and "fvcore cannot count some ops of" in report
    meta = pd.read_json(run_dir / "run.json", typ="series")
    assert meta["space_plugins"][0]["spec"] == str(folder / "plug_e2e.py")
