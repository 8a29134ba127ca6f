"""Every storage backend, by name, as a function that opens a fresh store in a folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from coopfed.node.storage import SqliteStore, Store

BACKENDS: dict[str, Callable[[Path], Store]] = {
    "sqlite": lambda folder: SqliteStore(folder / "node.db"),
}
