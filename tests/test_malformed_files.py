"""Issue 32: every malformed search-space or protocol file is one UsageError line ``path:line: what is wrong``.

Property-based: hypothesis starts from valid files, puts a wrong value (a wrong scalar, a list, a mapping, nested
containers, None, huge and tiny numbers, NaN, infinities, long or odd strings) at any key of any nesting level,
adds unknown keys, drops keys, then sometimes damages the bytes (Latin-1, cut short, stray bytes, control
characters, YAML syntax). Each file is fed through the real loader: it loads (a mutation can be valid) or it
raises UsageError in one line that starts with the file's path and a line of the file; nothing else may escape.
"""

from __future__ import annotations

import copy
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ablate.core.errors import UsageError
from ablate.protocols import load_protocol
from ablate.space import load_space

SPACE_EXAMPLES = 300
PROTOCOL_EXAMPLES = 250  # 550 generated files in all, besides the fixed ones below

SPACE_BASES: list[dict[str, Any]] = [
    {
        "name": "tiny", "description": "two axes searched, one fixed", "plugins": [],
        "axes": {"nonlinearity": {"choices": ["relu", "multiply"]}, "width": {"choices": [1, 2.5]}},
        "fixed": {"spatial": "maxpool"}, "macro": {"default": "cifar", "digits": "cifar"},
        "baselines": ["resnet50", "resnet50_max"],
        "objectives": [{"metric": "top1", "direction": "maximize"}, {"metric": "macs"}], "design": "ablation",
        "reference": {"nonlinearity": "multiply", "width": 2.5},
    },
    {
        "name": "iso", "axes": {"nonlinearity": ["relu", "hardball"], "spatial": {"choices": ["dwconv", "twist"]},
                                "width": {"match": "macs"}},
        "macro": "cifar", "objectives": ["top1", "params"], "design": "balanced",
    },
    {
        "name": "grid", "axes": {"spatial": {"choices": ["dwconv", "maxpool"]}, "width": {"choices": [0.25, 4]}},
        "fixed": {"nonlinearity": "relu"}, "design": "ablation", "reference": "relu-dwconv-w4",
    },
]

PROTOCOL_BASES: list[dict[str, Any]] = [
    {
        "description": "a small recipe", "source": "a test", "expected": "nothing", "dataset": "digits",
        "macro": "cifar", "epochs": 3, "batch_size": 16, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9,
        "nesterov": True, "weight_decay": 5.0e-4, "schedule": "step", "step_epochs": 2, "gamma": 0.5,
        "warmup_epochs": 1, "label_smoothing": 0.1, "augmentation": {"crop_padding": 2, "hflip": False},
        "amp": False, "channels_last": False, "compile": False, "val_fraction": 0.2, "image_size": 32,
    },
    {
        "dataset": "imagefolder", "macro": "resnet50", "epochs": 4, "batch_size": 8, "lr": 0.2, "image_size": 64,
        "augmentation": {"crop_padding": 0, "hflip": True, "auto_augment": "rand-m7-mstd0.5-inc1", "re_prob": 0.4,
                         "re_mode": "pixel", "re_count": 3},
    },
]

# Names the loaders know, so that a mutation is sometimes valid or nearly so; none of them is an importable module
# (a string under ``plugins:`` is imported).
KNOWN_NAMES = ["relu", "multiply", "hardball", "dwconv", "maxpool", "twist", "cifar", "resnet50", "digits",
               "imagefolder", "top1", "macs", "maximize", "minimize", "ablation", "grid", "sgd", "cosine", "step",
               "onecycle", "pixel", "match", "choices", "default", "rand-m9", "relu-maxpool-w1"]
ODD_STRINGS = ["", " ", "é", "x" * 5000, "a\nb", "tab\there", "'quoted'", "{not: a mapping}", "[1, 2]", "~",
               "null", "yes", "1e999", "0x1F", "2001-02-30", "*alias", "&anchor", "!!python/name:os.system",
               "\u2028", "\U0001f600", "\x00", "-", ".nan"]
HUGE_AND_TINY = [10**30, -10**30, 2**63, -2**63 - 1, 10**400, 0, -1, 1e308, -1e308, 5e-324, 1e-300, -0.0]

keys = st.one_of(st.sampled_from(["bogus", "choices", "match", "metric", "direction", "default", "hflip"]),
                 st.text(max_size=8).map(lambda s: "~" + s), st.integers(-3, 3), st.none(), st.booleans(),
                 st.floats(allow_nan=False))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from(HUGE_AND_TINY),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(KNOWN_NAMES + ODD_STRINGS),
    st.text(max_size=12).map(lambda s: "~" + s), st.binary(max_size=8), st.dates(),
)
wrong_values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)


def node_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value in a nest of dicts and lists (keys and list indices), the root's last (hypothesis
    draws the first ones more often)."""
    paths = []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        paths += node_paths(child, prefix + (key,))
    return paths + [prefix]


def node_at(data: Any, path: tuple) -> Any:
    for key in path:
        data = data[key]
    return data


@st.composite
def mutated(draw: Callable, bases: list[dict[str, Any]]) -> Any:
    """A valid file's data with 1–3 of: a value replaced by a wrong one, an unknown key (or list item) added, a key
    (or item) dropped."""
    data = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(node_paths(data)))
        action = draw(st.sampled_from(["replace", "replace", "replace", "add", "drop"]))
        if action == "replace" and not path:
            data = draw(wrong_values)
        elif action == "replace":
            node_at(data, path[:-1])[path[-1]] = draw(wrong_values)
        elif action == "drop" and path:
            del node_at(data, path[:-1])[path[-1]]
        elif action == "add" and isinstance(node_at(data, path), dict):
            node_at(data, path)[draw(keys)] = draw(wrong_values)
        elif action == "add" and isinstance(node_at(data, path), list):
            node_at(data, path).append(draw(wrong_values))
    return data


CORRUPTIONS = ["none", "none", "latin-1", "truncate", "bytes", "control", "syntax", "utf-16"]
YAML_JUNK = ["[", "]", "{", "}", ": ", "- ", "&a ", "*a", "*nope", "!!python/object/apply:os.system [echo]\n",
             "!!binary x", "!!float abc", "!!int 1_x", "!!bool maybe", "!!timestamp never", "!!set [a]", "? ",
             "---\n", "...\n", "%YAML 1.1\n", "\t", "'", '"', "|\n", ">-\n", "<<: 1\n", "!foo ", "#", "\n  ", "@",
             "`", "key: [1, 2\n", "0b102", "1" * 5000, "[" * 3000, "2001-02-30"]


@st.composite
def file_bytes(draw: Callable, bases: list[dict[str, Any]]) -> bytes:
    """A mutated file rendered as YAML, its bytes sometimes damaged."""
    text = yaml.safe_dump(draw(mutated(bases)), sort_keys=False, allow_unicode=True)
    corruption = draw(st.sampled_from(CORRUPTIONS))
    at = draw(st.integers(0, len(text)))
    if corruption == "latin-1":
        return (text[:at] + "café" + text[at:]).encode("latin-1", errors="replace")
    if corruption == "truncate":
        return text.encode()[:at]
    if corruption == "bytes":
        raw = text.encode()
        return raw[:at] + draw(st.binary(min_size=1, max_size=6)) + raw[at:]
    if corruption == "control":
        return (text[:at] + draw(st.sampled_from(["\x00", "\x07", "\x1b", "\x7f", "\ufffe", "\ud800"]))
                + text[at:]).encode("utf-8", errors="surrogatepass")
    if corruption == "syntax":
        return (text[:at] + draw(st.sampled_from(YAML_JUNK)) + text[at:]).encode()
    if corruption == "utf-16":
        return text.encode("utf-16")
    return text.encode()


def assert_loads_or_one_line_error(load: Callable[[Path], Any], content: bytes) -> None:
    """Write ``content`` to a fresh file and load it: a result, or UsageError ``path:line: message`` in one line
    (a line of the file, counted as editors count lines)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "malformed.yaml"
        path.write_bytes(content)
        try:
            load(path)
        except UsageError as err:
            message = str(err)
            assert len(message.splitlines()) == 1, message
            assert len(message) < 1500, message[:300]
            match = re.match(re.escape(str(path)) + r":(\d+): \S", message)
            assert match, message
            assert 1 <= int(match[1]) <= len(re.findall(rb"\r\n|\r|\n", content)) + 1, message


SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]


@settings(max_examples=SPACE_EXAMPLES, deadline=None, suppress_health_check=SUPPRESS, database=None)
@given(content=file_bytes(SPACE_BASES))
def test_malformed_space_files_are_one_line_errors(content):
    assert_loads_or_one_line_error(load_space, content)


@settings(max_examples=PROTOCOL_EXAMPLES, deadline=None, suppress_health_check=SUPPRESS, database=None)
@given(content=file_bytes(PROTOCOL_BASES))
def test_malformed_protocol_files_are_one_line_errors(content):
    assert_loads_or_one_line_error(load_protocol, content)


@pytest.mark.parametrize("bases", [SPACE_BASES, PROTOCOL_BASES])
def test_the_bases_are_valid(bases):
    load = load_space if bases is SPACE_BASES else load_protocol
    for base in bases:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "valid.yaml"
            path.write_text(yaml.safe_dump(base, sort_keys=False))
            load(path)


SPACE = "name: t\naxes:\n  nonlinearity:\n    choices: [relu, multiply]\n  width:\n    choices: [1, 2]\nmacro: cifar\n"
PROTOCOL = "dataset: digits\nmacro: cifar\nepochs: 2\nbatch_size: 16\nlr: 0.1\n"


def bomb(key: str) -> str:
    """``key`` set to a list whose last item is an alias tree of 9**9 leaves: expanding it (``repr``, ``str``)
    would never end."""
    levels = ["&a [" + ", ".join(["x"] * 9) + "]"]
    levels += [f"&{n} [" + ", ".join([f"*{p}"] * 9) + "]" for p, n in zip("abcdefgh", "bcdefghi")]
    return f"{key}:\n" + "".join(f"  - {level}\n" for level in levels)


AUDIT_SPACES = [
    ("list as a choice", SPACE.replace("[relu, multiply]", "[relu, [multiply]]"), 3, "nonlinearity"),
    ("mapping as a choice", SPACE.replace("[relu, multiply]", "[relu, {a: 1}]"), 3, "nonlinearity"),
    ("list as a width", SPACE.replace("[1, 2]", "[1, [2]]"), 5, "width"),
    ("infinite width", SPACE.replace("[1, 2]", "[1, .inf]"), 5, "width"),
    ("NaN width", SPACE.replace("[1, 2]", "[1, .nan]"), 5, "width"),
    ("list as a macro", SPACE.replace("macro: cifar", "macro: {default: [cifar]}"), 7, "macro"),
    ("list as a baseline", SPACE + "baselines: [[resnet50]]\n", 8, "baselines"),
    ("list as a metric", SPACE + "objectives: [{metric: [top1]}]\n", 8, "objective"),
    ("list as a name", SPACE.replace("name: t", "name: [t]"), 1, "name"),
    ("invalid date", SPACE.replace("name: t", "name: 2001-02-30"), 1, "timestamp"),
    ("number of 5000 digits", SPACE.replace("[1, 2]", "[1, " + "1" * 5000 + "]"), 6, "int"),
    ("bad tagged float", SPACE.replace("[1, 2]", "[1, !!float abc]"), 6, "float"),
    ("bad tagged bool", SPACE.replace("name: t", "name: !!bool maybe"), 1, "bool"),
    ("control character", SPACE.replace("macro: cifar", "macro: ci\x07far"), 7, "character"),
    ("deep nesting", SPACE.replace("[relu, multiply]", "[" * 3000), 4, "nest"),
    ("U+2028 in a string", 'description: "a\u2028b"\n' + SPACE.replace("cifar", "vgg"), 8, "unknown macro"),
    ("Windows line ends", SPACE.replace("cifar", "vgg").replace("\n", "\r\n"), 7, "unknown macro"),
    ("U+2028 before bad YAML", 'description: "a\u2028b"\n' + SPACE.replace("[1, 2]", "[1, 2"), 8, "invalid YAML"),
    ("plugin name on two lines", 'plugins: ["a\\nb"]\n' + SPACE, 1, "plugin a b"),
]


@pytest.mark.parametrize("what,text,line,words", AUDIT_SPACES, ids=[case[0] for case in AUDIT_SPACES])
def test_audited_space_files_are_one_line_errors(tmp_path, what, text, line, words):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as err:
        load_space(path)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and message.startswith(f"{path}:{line}: ") and words in message, message


def test_latin1_files_point_at_the_first_bad_byte(tmp_path):
    for load, text in ((load_space, SPACE), (load_protocol, PROTOCOL)):
        path = tmp_path / "latin.yaml"
        path.write_bytes((text + "description: café\n").encode("latin-1"))
        with pytest.raises(UsageError) as err:
            load(path)
        line = text.count("\n") + 1
        assert str(err.value).startswith(f"{path}:{line}: ") and "UTF-8" in str(err.value), str(err.value)


@pytest.mark.parametrize("load, text, key", [(load_space, SPACE, "description"), (load_protocol, PROTOCOL, "nesterov")])
def test_alias_bombs_are_refused_without_expanding_them(tmp_path, load, text, key):
    path = tmp_path / "bomb.yaml"
    path.write_text(text + bomb(key))
    with pytest.raises(UsageError) as err:
        load(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{text.count(chr(10)) + 1}: ") and key in message and len(message) < 500, message


@pytest.mark.parametrize("text,line,key", [
    (PROTOCOL + "lr: .inf\n", 6, "lr"),
    (PROTOCOL.replace("lr: 0.1", "lr: " + "9" * 400), 5, "lr"),
    (PROTOCOL.replace("epochs: 2", "epochs: 1000000000000000000000000000000"), 3, "epochs"),
    (PROTOCOL + "momentum: .nan\n", 6, "momentum"),
    (PROTOCOL + "augmentation: {hflip: [true]}\n", 6, "augmentation.hflip"),
    (PROTOCOL + "augmentation:\n  crop_padding: 2\n  re_prob: .inf\n", 8, "augmentation.re_prob"),
    (PROTOCOL + "1: x\nbogus: y\n", 6, "1"),
    (PROTOCOL + "nesterov: {a: b}\n", 6, "nesterov"),
    (PROTOCOL.replace("batch_size: 16", "batch_size: [16]"), 4, "batch_size"),
])
def test_audited_protocol_files_name_the_line_and_key(tmp_path, text, line, key):
    path = tmp_path / "protocol.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as err:
        load_protocol(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}:{line}: ") and key in message, message
