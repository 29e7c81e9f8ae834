"""A name -> converter table; readers and writers each keep their own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, F] = {}

    def register(self, *names: str) -> Callable[[F], F]:
        """Decorator: the function converts every one of `names`."""
        def add(fn: F) -> F:
            for name in names:
                self._entries[name] = fn
            return fn

        return add

    def get(self, name: str) -> F | None:
        return self._entries.get(name)

    def names(self) -> list[str]:
        return sorted(self._entries)
