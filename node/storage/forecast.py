"""The forecast index interface: which signed model files a node holds, the training mode in
use, and the latest forecast. The model artifacts themselves are files in the forecast folder
(signed, verified on every use); the store says which exist and where."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class IndexedModel:
    coop_id: str
    kind: str  # "local" or "pooled"
    version: int
    file: str  # relative to the forecast folder


@dataclass(frozen=True)
class ForecastSnapshot:
    """What a co-op's old forecast folder held besides the artifacts, imported in one go."""

    models: Sequence[IndexedModel] = ()
    mode: str | None = None
    latest: dict[str, Any] | None = None  # with its "sequence"


class ForecastIndex(abc.ABC):
    """The forecast index in the node's database, shared by the running node and the CLI."""

    @abc.abstractmethod
    def models(self, coop_id: str, kind: str) -> list[IndexedModel]:
        """The co-op's models of one kind, oldest version first."""

    @abc.abstractmethod
    def max_version(self, coop_id: str) -> int:
        """The highest version the co-op used, whatever the kind; 0 if none."""

    @abc.abstractmethod
    def add_model(self, model: IndexedModel, saved_at: int) -> None:
        """Index a model file; AlreadyExists if that co-op, kind and version is indexed."""

    @abc.abstractmethod
    def mode(self) -> str | None:
        """The training mode forecasts use ("pooled" or "federated"), None until one is set."""

    @abc.abstractmethod
    def set_mode(self, mode: str) -> None: ...

    @abc.abstractmethod
    def latest_sequence(self) -> int:
        """The sequence of the latest forecast, 0 if none (cheap: readers poll it)."""

    @abc.abstractmethod
    def latest(self) -> dict[str, Any] | None:
        """The latest forecast as saved, its "sequence" set; None if none was made."""

    @abc.abstractmethod
    def save_latest(self, forecast: dict[str, Any]) -> int:
        """Keep `forecast` as the latest, numbered one after the one it replaces (set into its
        "sequence" in the same transaction); returns that number."""

    @abc.abstractmethod
    def import_snapshot(self, snapshot: ForecastSnapshot) -> bool:
        """Store `snapshot` in one transaction if the index is empty; False (nothing written) if not."""
