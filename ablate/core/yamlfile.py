"""YAML files read for one-line errors: every mapping remembers its keys' lines, and whatever goes wrong in reading
— bytes that are not UTF-8, characters YAML refuses, invalid YAML, a value its tag cannot read, nesting too deep — is a
``UsageError`` ``path:line: what is wrong``. The space and protocol loaders both read through :func:`read_yaml`."""

from __future__ import annotations

import re
import reprlib
from pathlib import Path
from typing import Any

import yaml

from ablate.core.errors import UsageError

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60


def shown(value: Any) -> str:
    """A value as a one-line error shows it: a scalar's repr, cut short; a list as ``[...]``, a mapping as ``{...}``
    (an alias tree's repr would never end)."""
    if isinstance(value, dict):
        return "{...}"
    if isinstance(value, (list, tuple, set)):
        return "[...]" if isinstance(value, list) else f"a {type(value).__name__}"
    return _SHORT.repr(value)


def one_line(text: str, limit: int = 400) -> str:
    """A message from elsewhere, which may quote a value of the file as it is (long, or on several lines), as one
    line of at most ``limit`` characters."""
    text = " ".join(text.splitlines())
    return text if len(text) <= limit else text[:limit - 1] + "…"


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _line_at(text: str, index: int | None = None) -> int:
    """The line of ``text[index]`` (of the end of ``text``) as editors and ``grep -n`` count lines: YAML 1.1 also
    breaks lines at U+0085, U+2028 and U+2029, so its own marks can point past them."""
    return len(_LINE_BREAK.findall(text, 0, len(text) if index is None else index)) + 1


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader whose mappings remember the line of each key, for one-line errors that point at it."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def line_of(self, mark: yaml.Mark) -> int:
        return _line_at(self.text, mark.index)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """PyYAML's, with the errors its scalar constructors let escape (``2001-02-30``, ``!!float abc``, an int
        of 5000 digits) turned into a marked YAML error on the node."""
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
            what = shown(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {what} as a YAML {node.tag.rsplit(':', 1)[-1]}: correct it, or quote it "
                            "if it is text", node.start_mark) from None


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> YamlMapping:
    mapping = YamlMapping(loader.construct_mapping(node, deep=True))
    mapping.lines = {loader.construct_object(k, deep=True): loader.line_of(k.start_mark) for k, _ in node.value}
    mapping.line = loader.line_of(node.start_mark)
    return mapping


class YamlMapping(dict):
    """A mapping of a YAML file: ``lines`` (key → line) and its own ``line``."""

    lines: dict[Any, int]
    line: int


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_problem(err: yaml.YAMLError, text: str) -> tuple[int, str]:
    """(line, one-line problem) of a YAML error: marked ones carry their line; a reader's carries its position."""
    if isinstance(err, yaml.reader.ReaderError):
        where = _line_at(text, err.position) if isinstance(err.position, int) else 1
        return where, f"special character {chr(err.character)!r} is not allowed in YAML: remove it"
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or getattr(err, "context", None) or "unreadable"
    return (_line_at(text, mark.index) if mark else 1), " ".join(str(problem).split())


def read_yaml(path: Path) -> Any:
    """A YAML file's data, its mappings remembering their keys' lines (``.lines``, ``.line``).

    Args:
        path: The file.

    Returns:
        What the file holds; every mapping in it is a dict with ``lines`` (key → line) and ``line`` attributes.

    Raises:
        UsageError: ``path:line: what is wrong``: an unreadable file, bytes that are not UTF-8, a character YAML
            refuses, invalid YAML, a value its tag cannot read (``2001-02-30``), nesting too deep.
    """
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UsageError(f"{path}:1: cannot read the file ({err.strerror or err}): check that it is a readable file"
                         ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = _line_at(raw[:err.start].decode("utf-8"))
        raise UsageError(f"{path}:{line}: the file is not UTF-8 text (byte {raw[err.start]:#04x}): save it as UTF-8"
                         ) from None
    loader = None
    try:
        loader = _LineLoader(text)
        return loader.get_single_data()
    except yaml.YAMLError as err:
        line, problem = _yaml_problem(err, text)
        raise UsageError(f"{path}:{line}: invalid YAML: {problem}") from None
    except RecursionError:
        line = loader.line_of(loader.get_mark()) if loader is not None else 1
        raise UsageError(f"{path}:{line}: lists or mappings nested too deeply: flatten them") from None
    finally:
        if loader is not None:
            loader.dispose()
