"""Name registries: the one lookup every registry of the package goes through, with the one error it gives."""

from __future__ import annotations

from typing import Mapping, TypeVar

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, what: str, error: type[Exception] = ValueError) -> T:
    """The entry registered under ``name``.

    Args:
        registry: The registry (name → entry).
        name: The name asked for.
        what: What the entries are, for the message (e.g. ``"spatial op"``).
        error: The exception type to raise; ``UsageError`` where the name comes straight from the user.

    Returns:
        ``registry[name]``.

    Raises:
        error: One line, ``unknown <what> '<name>': choose one of a, b, c``.
    """
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise error(f"unknown {what} {name!r}: choose one of {', '.join(registry)}") from None
