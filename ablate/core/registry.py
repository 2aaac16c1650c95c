"""Name registries: the one lookup every registry of the package goes through, with the one error it gives, and
:class:`Registry` for the registries a plugin may add to, which own their entries and take new ones only through
:meth:`Registry.register`."""

from __future__ import annotations

from typing import Iterator, Mapping, TypeVar

T = TypeVar("T")


class Registry(Mapping[str, T]):
    """Name → entry, read like a mapping; its built-in entries fixed, new ones added by :meth:`register`.

    Args:
        what: What the entries are, for messages (``"spatial op"``).
        built_in: The entries the package ships.
    """

    def __init__(self, what: str, built_in: Mapping[str, T]):
        self.what = what
        self._entries: dict[str, T] = dict(built_in)
        self._built_in = frozenset(built_in)
        self._owners: dict[str, str] = {}  # name → the module that registered it

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def is_built_in(self, name: str) -> bool:
        return name in self._built_in

    def owner(self, name: str) -> str | None:
        """The module that registered ``name`` (None for a built-in or unknown name)."""
        return self._owners.get(name)

    def register(self, name: str, entry: T, owner: str) -> None:
        """Add ``entry`` under ``name`` for the module ``owner``; that module registering again (a re-import, a
        worker's second import) replaces its own entry.

        Raises:
            ValueError: The name is built in, or another module's.
        """
        if name in self._built_in:
            raise ValueError(f"{self.what} {name!r} is built in; register yours under another name")
        if self._owners.get(name, owner) != owner:
            raise ValueError(f"{self.what} {name!r} is already registered by {self._owners[name]}; register yours "
                             "under another name")
        self._entries[name] = entry
        self._owners[name] = owner

    def remove(self, name: str) -> None:
        """Take a registered (not built-in) entry out again; an unknown name is ignored.

        Raises:
            ValueError: The name is built in.
        """
        if name in self._built_in:
            raise ValueError(f"{self.what} {name!r} is built in and cannot be removed")
        self._entries.pop(name, None)
        self._owners.pop(name, None)


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
