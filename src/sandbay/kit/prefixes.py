"""Values chosen by URL path prefix, the longest registered prefix winning: how a
request finds its surface (the native API, or a dialect under its own paths)."""

from typing import Generic, TypeVar

T = TypeVar("T")


class ByPrefix(Generic[T]):
    """`for_path` gives the value of the longest registered prefix of a path, or the
    default when none is."""

    def __init__(self, default: T) -> None:
        self.default = default
        self._by_prefix: list[tuple[str, T]] = []

    def register(self, prefix: str, value: T) -> None:
        self._by_prefix.append((prefix, value))
        self._by_prefix.sort(key=lambda item: len(item[0]), reverse=True)

    def for_path(self, path: str) -> T:
        for prefix, value in self._by_prefix:
            if path.startswith(prefix):
                return value
        return self.default

    def values(self) -> list[T]:
        """Every registered value and the default."""
        return [value for _, value in self._by_prefix] + [self.default]
