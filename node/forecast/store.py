"""The forecast folder's signed model files per co-op, and, in the node's forecast index, which
are held, the training mode in use and the latest forecast.

Shared by the running node and the CLI: the index is in the node's database, and the latest
forecast is parsed again only when its sequence changed (one cheap query per look), so a
forecast made with the CLI reaches the node's streams.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from coopfed.federation.keys import write_public
from coopfed.node.errors import FailedPrecondition, InvalidArgument
from coopfed.node.federation.manifest import NODE_ID
from coopfed.node.storage.forecast import ForecastIndex, ForecastSnapshot, IndexedModel

log = logging.getLogger(__name__)
MODES = ("pooled", "federated")
KINDS = ("local", "pooled")
_MODEL_FILE = re.compile(r"(local|pooled)-v([0-9]{1,12})\.cfmodel")
# the JSON files of earlier releases, imported once into the index (see import_folder)
_LATEST = "latest.json"
_STATE = "state.json"


@dataclass(frozen=True)
class ModelFile:
    """A signed artifact on disk (not verified: verify before use)."""

    coop_id: str
    kind: str
    version: int
    path: Path


@dataclass(frozen=True)
class WindowRecord:
    kind: str  # "peak" or "surplus"
    start: int  # UTC unix seconds
    end: int  # exclusive
    daylight: bool
    confidence: float | None = None  # chance (0-1) it really is busy / in surplus; None: no band


@dataclass(frozen=True)
class ModelRecord:
    """One verified artifact behind a forecast, and its weight in the ensemble."""

    trained_by: str
    version: int
    kind: str
    trained_at: str  # ISO 8601 UTC
    training_rows: int
    weight: float
    contributors: tuple[str, ...]
    sha256: str


@dataclass(frozen=True)
class StoredForecast:
    """A forecast as kept in the folder: 96 half-hours, its windows and the models behind it."""

    coop_id: str
    made_at: int
    origin: int
    periods: tuple[int, ...]
    demand_kwh: tuple[float, ...]
    generation_kwh: tuple[float, ...]
    members: int
    peak_percentile: float
    peak_threshold_kwh: float
    windows: tuple[WindowRecord, ...]
    mode: str
    models: tuple[ModelRecord, ...]
    sequence: int = 0  # set by the store when saved
    band: dict[str, tuple[float, ...]] = field(default_factory=dict)  # "demand_p10_kwh": per period

    def open_windows(self, now: int) -> tuple[WindowRecord, ...]:
        """Windows that have not ended by `now`."""
        return tuple(w for w in self.windows if w.end > now)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StoredForecast:
        return cls(
            **{
                **raw,
                "periods": tuple(int(p) for p in raw["periods"]),
                "demand_kwh": tuple(float(v) for v in raw["demand_kwh"]),
                "generation_kwh": tuple(float(v) for v in raw["generation_kwh"]),
                "windows": tuple(WindowRecord(**w) for w in raw["windows"]),
                "band": {k: tuple(float(v) for v in vs) for k, vs in raw.get("band", {}).items()},
                "models": tuple(
                    ModelRecord(**{**m, "contributors": tuple(m["contributors"])}) for m in raw["models"]
                ),
            }
        )


def check_coop_id(coop_id: str) -> str:
    """Co-op ids name folders here: DNS-style names only."""
    if not NODE_ID.fullmatch(coop_id) or len(coop_id) > 253:
        raise InvalidArgument(f"{coop_id!r} is not a co-op id", code="forecast.coop_id")
    return coop_id


@dataclass
class ForecastStore:
    """Models under `models/<coop>/<kind>-v<version>.cfmodel` in `path`, indexed in `index`."""

    path: Path
    index: ForecastIndex
    _cached: tuple[int, StoredForecast] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- models --------------------------------------------------------------------------

    def model_files(self, coop_id: str, kind: str) -> list[ModelFile]:
        """The co-op's artifacts of one kind, oldest version first."""
        held = self.index.models(check_coop_id(coop_id), kind)
        return [ModelFile(m.coop_id, m.kind, m.version, self.path / m.file) for m in held]

    def latest_model(self, coop_id: str, kind: str) -> ModelFile | None:
        files = self.model_files(coop_id, kind)
        return files[-1] if files else None

    def next_version(self, coop_id: str) -> int:
        """One more than any version the co-op used, whatever the kind."""
        return self.index.max_version(check_coop_id(coop_id)) + 1

    def save_model(self, coop_id: str, kind: str, version: int, data: bytes) -> ModelFile:
        if kind not in KINDS:
            raise InvalidArgument(f"model kind must be one of {KINDS}", code="forecast.kind")
        model = IndexedModel(check_coop_id(coop_id), kind, version, _model_name(coop_id, kind, version))
        path = self.path / model.file
        if any(m.version == version for m in self.index.models(coop_id, kind)):
            raise FailedPrecondition(f"{path} exists already", code="forecast.model_exists")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_public(path, data)  # a file left by a save that never reached the index is replaced
        self.index.add_model(model, int(time.time()))
        return ModelFile(coop_id, kind, version, path)

    # --- the training mode forecasts use --------------------------------------------------

    def mode(self) -> str | None:
        mode = self.index.mode()
        return mode if mode in MODES else None

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise InvalidArgument(f"mode must be one of {MODES}", code="forecast.mode")
        self.index.set_mode(mode)

    # --- the latest forecast ---------------------------------------------------------------

    def latest(self) -> StoredForecast | None:
        """The latest forecast, parsed again only when its sequence changed."""
        sequence = self.index.latest_sequence()
        if sequence == 0:
            return None
        with self._lock:
            if self._cached is not None and self._cached[0] == sequence:
                return self._cached[1]
        raw = self.index.latest()
        if raw is None:
            return None
        try:
            forecast = StoredForecast.from_dict(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise FailedPrecondition(
                f"the latest forecast in the forecast index is corrupt: {exc}", code="forecast.corrupt"
            ) from exc
        with self._lock:
            self._cached = (forecast.sequence, forecast)
        return forecast

    def save_forecast(self, forecast: StoredForecast) -> StoredForecast:
        """Keep `forecast` as the latest, numbered one after the one it replaces."""
        return replace(forecast, sequence=self.index.save_latest(forecast.to_dict()))


def _model_name(coop_id: str, kind: str, version: int) -> str:
    return f"models/{coop_id}/{kind}-v{version}.cfmodel"


def import_folder(path: Path, index: ForecastIndex) -> bool:
    """Index the model files, training mode and latest forecast an earlier release kept as files
    in the forecast folder, once, into an empty index; the JSON files are then set aside
    (renamed `*.imported`). All or nothing: an unreadable file stops it and imports nothing."""
    models = [
        IndexedModel(folder.name, match.group(1), int(match.group(2)), f"models/{folder.name}/{entry.name}")
        for folder in sorted((path / "models").glob("*"))
        if folder.is_dir() and NODE_ID.fullmatch(folder.name)
        for entry in sorted(folder.glob("*.cfmodel"))
        if (match := _MODEL_FILE.fullmatch(entry.name))
    ]
    if models and models[0] in index.models(models[0].coop_id, models[0].kind):
        models = []  # indexed already: only JSON files left behind could remain to import
    state, latest = _legacy_json(path / _STATE), _legacy_json(path / _LATEST)
    if not models and state is None and latest is None:
        return False
    if latest is not None:
        try:
            latest = StoredForecast.from_dict(latest).to_dict()
        except (ValueError, KeyError, TypeError) as exc:
            raise _corrupt(path / _LATEST, exc) from exc
    mode = state.get("mode") if isinstance(state, dict) else None
    imported = index.import_snapshot(ForecastSnapshot(models, mode if mode in MODES else None, latest))
    if imported:
        log.info("forecast index imported from %s: %d model file(s)", path, len(models))
    for name in (_STATE, _LATEST):
        with contextlib.suppress(FileNotFoundError):  # never there, or set aside by another process
            (path / name).rename(path / f"{name}.imported")
    return imported


def _legacy_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise _corrupt(path, exc) from exc


def _corrupt(path: Path, exc: Exception) -> FailedPrecondition:
    return FailedPrecondition(
        f"forecast file {path} is unreadable or corrupt, nothing was imported: {exc}", code="forecast.corrupt"
    )
