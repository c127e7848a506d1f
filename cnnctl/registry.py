"""Named entries of one kind, found by the name a recipe gives: data sources and export formats.

```python
from cnnctl.registry import SOURCES
SOURCES.register(Source(name="ramp", keys=("count",), load=load_ramp))  # a source of your own
SOURCES.get("npz")                                                     # the built-in npz source
```

A registry holds entries with a ``name``; registering a name twice is an error. Its
built-in entries live in one package of the stage that owns them (``cnnctl.data.sources``,
``cnnctl.exports.formats``), one module per entry; that package is imported the first time
the registry is read, so the recipe stage can validate ``data.source`` and ``export``
against them without importing the stages themselves (nor TensorFlow: those modules
import it lazily). This module imports nothing of cnnctl's.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar


class Named(Protocol):
    name: str


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    """Entries of one ``kind`` by name; the built-ins come from the package ``builtins``."""

    def __init__(self, kind: str, builtins: str):
        self.kind, self.builtins = kind, builtins
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, entry: T) -> T:
        """Add ``entry``; a name already taken is a ``ValueError``. Returns ``entry`` (usable as a decorator
        of a factory's result: ``NPZ = SOURCES.register(Source(...))``)."""
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} '{entry.name}' is registered already")
        self._entries[entry.name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a test's own entry, once the test is done)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T | None:
        self._load_builtins()
        return self._entries.get(name)

    def names(self) -> list[str]:
        self._load_builtins()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        self._load_builtins()
        return iter(list(self._entries.values()))

    def _load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True  # first: the package's modules register while it is being imported
            importlib.import_module(self.builtins)


SOURCES: Registry = Registry("data source", builtins="cnnctl.data.sources")
FORMATS: Registry = Registry("export format", builtins="cnnctl.exports.formats")
