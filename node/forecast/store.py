"""The forecast folder: signed model files per co-op, the training mode in use, the latest forecast.

Shared by the running node and the CLI like the federation folder: writes replace files
atomically under the folder's `flock`, and the latest forecast is parsed again only when its
file changed (one `stat` per look), so a forecast made with the CLI reaches the node's streams.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from coopfed.federation.keys import write_public
from coopfed.node.errors import FailedPrecondition, InvalidArgument
from coopfed.node.federation.files import Folder
from coopfed.node.federation.manifest import NODE_ID

MODES = ("pooled", "federated")
KINDS = ("local", "pooled")
_MODEL_FILE = re.compile(r"(local|pooled)-v([0-9]{1,12})\.cfmodel")
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
    """Models under `models/<coop>/<kind>-v<version>.cfmodel`, `state.json`, `latest.json`."""

    path: Path
    _cached: tuple[tuple[int, int, int], StoredForecast] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.folder = Folder(self.path)

    # --- models --------------------------------------------------------------------------

    def model_files(self, coop_id: str, kind: str) -> list[ModelFile]:
        """The co-op's artifacts of one kind, oldest version first."""
        folder = self.path / "models" / check_coop_id(coop_id)
        found = []
        for entry in folder.glob("*.cfmodel") if folder.is_dir() else ():
            match = _MODEL_FILE.fullmatch(entry.name)
            if match and match.group(1) == kind:
                found.append(ModelFile(coop_id, kind, int(match.group(2)), entry))
        return sorted(found, key=lambda f: f.version)

    def latest_model(self, coop_id: str, kind: str) -> ModelFile | None:
        files = self.model_files(coop_id, kind)
        return files[-1] if files else None

    def next_version(self, coop_id: str) -> int:
        """One more than any version the co-op used, whatever the kind."""
        held = [f.version for kind in KINDS for f in self.model_files(coop_id, kind)]
        return max(held, default=0) + 1

    def save_model(self, coop_id: str, kind: str, version: int, data: bytes) -> ModelFile:
        if kind not in KINDS:
            raise InvalidArgument(f"model kind must be one of {KINDS}", code="forecast.kind")
        with self.folder.locked():
            folder = self.path / "models" / check_coop_id(coop_id)
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = folder / f"{kind}-v{version}.cfmodel"
            if path.exists():
                raise FailedPrecondition(f"{path} exists already", code="forecast.model_exists")
            write_public(path, data)
        return ModelFile(coop_id, kind, version, path)

    # --- the training mode forecasts use --------------------------------------------------

    def mode(self) -> str | None:
        try:
            mode = json.loads((self.path / _STATE).read_text("utf-8")).get("mode")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, AttributeError) as exc:
            raise self._corrupt(_STATE, exc) from exc
        return mode if mode in MODES else None

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise InvalidArgument(f"mode must be one of {MODES}", code="forecast.mode")
        with self.folder.locked():
            write_public(self.path / _STATE, json.dumps({"mode": mode}).encode())

    # --- the latest forecast ---------------------------------------------------------------

    def latest(self) -> StoredForecast | None:
        """The latest forecast, parsed again only when its file changed."""
        path = self.path / _LATEST
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if self._cached is not None and self._cached[0] == signature:
                return self._cached[1]
        try:
            forecast = StoredForecast.from_dict(json.loads(path.read_text("utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise self._corrupt(_LATEST, exc) from exc
        with self._lock:
            self._cached = (signature, forecast)
        return forecast

    def save_forecast(self, forecast: StoredForecast) -> StoredForecast:
        """Keep `forecast` as the latest, numbered one after the one it replaces."""
        with self.folder.locked():
            previous = self.latest()
            saved = replace(forecast, sequence=(previous.sequence if previous else 0) + 1)
            data = json.dumps(saved.to_dict(), sort_keys=True, separators=(",", ":")).encode()
            write_public(self.path / _LATEST, data)
        return saved

    def _corrupt(self, name: str, exc: Exception) -> FailedPrecondition:
        return FailedPrecondition(
            f"forecast file {self.path / name} is unreadable or corrupt: {exc}", code="forecast.corrupt"
        )
