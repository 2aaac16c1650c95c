import math
from pathlib import Path

import optuna
import pytest

from ablate.core.errors import UsageError
from ablate.models import MACROS, BlockConfig, build_model
from ablate.space import DESIGNS, config_hash, list_spaces, load_space, parse_objectives

GOOD = """\
name: tiny
axes:
  nonlinearity:
    choices: [relu, multiply]
  width:
    choices: [1, 2]
fixed:
  spatial: maxpool
macro: cifar
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_every_shipped_space_loads_and_builds():
    assert {"qlblock", "pflayer", "full", "qlblock-iso"} <= set(list_spaces())
    for name in list_spaces():
        macro = load_space(name).macro_for("digits", "cifar")
        space = load_space(name).resolved(macro, 10, MACROS[macro].input_size)  # solves a matched width
        assert space.size == len(space.grid()) == math.prod(len(a.choices) for a in space.axes)
        assert space.baselines == ("resnet50", "resnet50_max", "resnet50_hybrid")
        assert space.design in DESIGNS
        build_model(space.grid()[0], macro, 10)
    qlblock = load_space("qlblock")
    assert [a.name for a in qlblock.axes] == ["nonlinearity", "spatial", "width"]
    assert set(qlblock.axes[1].choices) == {"dwconv", "maxpool", "avgpool", "twist"}
    assert qlblock.macro_for("imagenet-pflayer", "x") == "resnet50"
    assert load_space("full").objectives[1].metric == "macs"


def test_fixed_axes_fill_the_config(tmp_path):
    space = load_space(write(tmp_path, GOOD))
    assert space.grid() == [BlockConfig(n, "maxpool", w) for n in ("relu", "multiply") for w in (1.0, 2.0)]


@pytest.mark.parametrize("text,line,message", [
    (GOOD.replace("  width:", "  colour:"), 5, "unknown axis 'colour'"),
    (GOOD.replace("choices: [1, 2]", "choices: []"), 5, "axis 'width' has no choices"),
    (GOOD.replace("choices: [relu, multiply]", "choices: [relu, gelu]"), 3,
     "invalid value 'gelu' for axis 'nonlinearity'"),
    (GOOD.replace("choices: [1, 2]", "choices: [1, -2]"), 5, "invalid value -2 for axis 'width'"),
    (GOOD.replace("macro: cifar", "macro: vgg"), 9, "unknown macro 'vgg'"),
    (GOOD.replace("fixed:", "fixd:"), 7, "unknown key 'fixd'"),
    (GOOD.replace("  spatial: maxpool", "  spatial: conv9x9"), 8, "invalid value 'conv9x9' for axis 'spatial'"),
    (GOOD + "objectives: [{metric: beauty}]\n", 10, "unknown objective metric 'beauty'"),
    (GOOD.replace("choices: [1, 2]", "choices: [1, 2"), 7, "invalid YAML"),
])
def test_bad_files_give_one_line_with_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as err:
        load_space(path)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"{path}:{line}: ") and message in text


def test_unknown_space_lists_the_available_ones():
    with pytest.raises(UsageError, match="available: full, pflayer, qlblock"):
        load_space("nope")


def _sample(space, seed, n):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    configs = []
    for _ in range(n):
        trial = study.ask()
        configs.append(space.config(space.suggest_values(trial)))
        study.tell(trial, 0.0)
    return configs, study


def test_sampling_is_deterministic_per_seed_and_covers_every_choice():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space("qlblock")
    first, study = _sample(space, 7, 60)
    second, _ = _sample(space, 7, 60)
    other, _ = _sample(space, 8, 60)
    assert first == second and first != other
    for axis in space.axes:
        assert {getattr(c, axis.name) for c in first} == set(axis.choices)
    assert set(study.trials[0].distributions) == {"nonlinearity", "spatial", "width"}  # one name per axis


def test_grid_sampler_walks_the_whole_space():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space("pflayer")
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(space.grid_search_space(), seed=0))
    seen = []
    study.optimize(lambda trial: seen.append(space.config(space.suggest_values(trial))) or 0.0, n_trials=space.size + 5)
    assert len(seen) == space.size
    assert sorted(map(str, seen)) == sorted(map(str, space.grid()))


def test_config_hash_is_canonical():
    assert config_hash(BlockConfig("relu", "dwconv", 1)) == config_hash(BlockConfig.parse("relu-dwconv-w1.0"))
    assert config_hash(BlockConfig("relu", "dwconv", 1)) != config_hash(BlockConfig("relu", "dwconv", 2))
    assert (config_hash(BlockConfig("relu", "dwconv", 1), "cifar")
            != config_hash(BlockConfig("relu", "dwconv", 1), "resnet50"))


def test_objectives_parse():
    assert ([(o.metric, o.direction) for o in parse_objectives("top1,macs")]
            == [("top1", "maximize"), ("macs", "minimize")])
    with pytest.raises(UsageError):
        parse_objectives("top1,speed")
    with pytest.raises(UsageError):
        parse_objectives("macs")


def test_design_key_defaults_to_search_and_ships_per_space(tmp_path):
    assert load_space(write(tmp_path, GOOD)).design == "search"
    assert load_space(write(tmp_path, GOOD + "design: grid\n")).design == "grid"
    assert DESIGNS == ("ablation", "balanced", "search", "grid")
    shipped = {name: load_space(name).design for name in ("qlblock", "pflayer", "full", "qlblock-iso")}
    assert shipped == {"qlblock": "ablation", "pflayer": "balanced", "full": "search", "qlblock-iso": "balanced"}
    assert load_space("qlblock").reference == {"nonlinearity": "multiply", "spatial": "dwconv", "width": 2.0}


MATCHED = """\
name: iso
axes:
  nonlinearity:
    choices: [relu, multiply]
  width:
    match: macs
fixed:
  spatial: maxpool
macro: cifar
"""


@pytest.mark.parametrize("text,line,message", [
    (GOOD + "design: random\n", 10, "unknown design 'random': choose one of ablation, balanced, search, grid"),
    (MATCHED.replace("match: macs", "match: flops"), 6, "unknown width match 'flops': choose one of macs"),
    (MATCHED.replace("match: macs", "match: macs\n    choices: [1]"), 6, "both choices and match"),
    (MATCHED.replace("choices: [relu, multiply]", "match: macs"), 4, "only the width can be matched"),
    (MATCHED.replace("  spatial: maxpool", "  width: 1"), 8, "axis 'width' is both searched and fixed"),
])
def test_bad_design_or_match_gives_one_line_with_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as err:
        load_space(path)
    assert "\n" not in str(err.value) and str(err.value).startswith(f"{path}:{line}: ") and message in str(err.value)


def test_matched_width_is_not_sampled_and_needs_resolving(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(write(tmp_path, MATCHED))
    assert space.width_match == "macs" and [a.name for a in space.axes] == ["nonlinearity"]
    assert space.size == 2 and space.grid_points() == [{"nonlinearity": "relu"}, {"nonlinearity": "multiply"}]
    assert space.pairs() == [("relu", "maxpool"), ("multiply", "maxpool")]
    with pytest.raises(ValueError, match=r"call space.resolved\(macro, num_classes, input_size\)"):
        space.config({"nonlinearity": "relu"})
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    space.suggest_values(trial)  # define-by-run sampling only suggests parameters: fine before resolving
    assert set(trial.params) == {"nonlinearity"}
    resolved = space.resolved("cifar", 10, (3, 32, 32))
    assert resolved.width_match == "macs" and resolved.axes == space.axes
    widths = {pair: m.width for pair, m in resolved.matched.items()}
    assert set(widths) == {("relu", "maxpool"), ("multiply", "maxpool")}
    config = resolved.config({"nonlinearity": "multiply"})
    assert config == BlockConfig("multiply", "maxpool", widths[("multiply", "maxpool")])
    assert str(config) == f"multiply-maxpool-w{widths[('multiply', 'maxpool')]:g}"
    assert resolved.config(resolved.suggest_values(trial)).width == widths[(trial.params["nonlinearity"], "maxpool")]


def test_resolving_a_space_without_match_changes_nothing():
    space = load_space("qlblock")
    assert space.width_match is None and space.resolved("cifar", 10, (3, 32, 32)) is space
