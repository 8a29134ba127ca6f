"""The node's settings: one frozen object built at start-up from TOML plus COOPFED_ overrides."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from coopfed.node.errors import InvalidArgument

ENV_PREFIX = "COOPFED_"


@dataclass(frozen=True)
class NodeSection:
    id: str = "coop"
    name: str = "Energy co-op"
    listen: str = "127.0.0.1:50051"
    # Plaintext is allowed only on loopback; anything else needs [tls].
    plaintext: bool = True
    max_message_bytes: int = 4 * 1024 * 1024
    max_readings_per_upload: int = 500_000
    max_messages_per_upload: int = 50_000
    # The most one household's meter can read in a half-hour: 50 kWh is 100 kW for 30 minutes,
    # beyond any home's supply. A reading above it is a fault and is refused, never summed.
    max_kwh_per_half_hour: float = 50.0
    member_token_ttl_days: int = 365
    # Registrations (applications to join) from one address: a burst, then so many an hour.
    registration_burst: int = 20
    registrations_per_hour: int = 60
    # Data requests and fetches by one credential (an organisation, a grant): a burst, then so
    # many an hour.
    request_burst: int = 30
    requests_per_hour: int = 120
    fetch_burst: int = 60
    fetches_per_hour: int = 600
    # Board tokens are short-lived: `coopfed review renew` swaps one for a fresh one before then.
    board_token_ttl_hours: int = 12


@dataclass(frozen=True)
class StorageSection:
    path: str = "node.db"
    # FULL survives power loss; NORMAL survives a killed process (WAL) and is faster.
    synchronous: str = "FULL"
    # A PostgreSQL database ("postgresql://user@host/db", any libpq URL) holds the node's state
    # instead of the SQLite file at path; path and synchronous are then unused.
    url: str = ""
    pool_size: int = 8  # PostgreSQL: connections in each of the node's two pools (writers, readers)


@dataclass(frozen=True)
class PolicySection:
    # "auto": "wasm" where OPA is installed, else "embedded". "wasm": OPA compiled to WebAssembly,
    # in-process (needs opa_binary or OPA installed to compile); "embedded": regopy, in-process,
    # no OPA needed; "opa": an OPA server over REST.
    engine: str = "auto"
    dir: str = "policies"
    opa_url: str = ""  # an OPA server to use; empty with opa_binary set starts a sidecar
    opa_binary: str = ""
    opa_token_file: str = ""  # the bearer token for opa_url's server (a file readable by us only)
    opa_ca_file: str = ""  # the CA (PEM) that verifies an https opa_url; empty: the system's CAs
    # A signed bundle (.tar.gz from `coopfed policy bundle`). Set, the node runs only what the
    # board signed (dir is then unused) and reloads it when it changes or on `coopfed policy reload`.
    bundle: str = ""
    board_keys: tuple[str, ...] = ()  # PEM public keys (ES256) of the technical board
    signatures_required: int = 1  # M: how many distinct board keys must have signed a bundle
    # How many must sign a bundle marked rollback (old content re-issued); 0: every board key.
    rollback_signatures_required: int = 0
    signature_scope: str = "coopfed-policy"  # the scope board signatures must carry
    watch: bool = True  # reload when the bundle file changes


@dataclass(frozen=True)
class TlsSection:
    cert: str = "tls/node.crt"
    key: str = "tls/node.key"


@dataclass(frozen=True)
class FederationSection:
    # host:port of the mutual-TLS port peers call; empty: no peer port and no refresh task.
    listen: str = ""
    # The host peers reach this node at; empty: the listen host, or the node id on a wildcard.
    advertise_host: str = ""
    # Development on loopback only. It never turns off TLS between peers: the peer port and
    # calls to peers are always mutual TLS against the pinned certificates.
    plaintext: bool = False
    dir: str = "federation"  # where earlier releases kept federation state; imported on first open
    # How often peers' manifests (key rotations) and revocation lists are fetched again.
    refresh_interval_s: int = 300
    # Lifetime of the access token that authenticates a grant request to a peer.
    access_token_ttl_s: int = 120
    # Half-hours per FederatedSeries message (a year is 17,520).
    series_chunk: int = 17_520


@dataclass(frozen=True)
class PlaceSection:
    """Where the co-op is: its clock (settlement periods, calendars, times members read), its
    public holidays and its location (the sun's path for forecasts)."""

    tz: str = "Europe/London"  # an IANA time zone
    holiday_country: str = "GB"  # ISO 3166 code, as the `holidays` package names countries
    holiday_subdivision: str = "ENG"  # e.g. ENG, SCT, NIR, WLS for GB; empty: the country's only
    latitude: float = 51.45  # decimal degrees (Bristol)
    longitude: float = -2.59
    altitude: float = 20.0  # metres


@dataclass(frozen=True)
class ForecastSection:
    dir: str = "forecast"  # signed model files (which are held, and forecasts: in the database)
    device: str = "cpu"  # XGBoost training device: "cpu" or "cuda[:n]"
    rounds: int = 150  # boosting rounds per model
    # How often a nudge stream looks for a forecast made by another process (the CLI) and
    # checks that its member still wants nudges.
    poll_interval_s: int = 2


@dataclass(frozen=True)
class ForecastScheduleSection:
    """The serving node forecasts and retrains by itself, on the co-op's clock ([place] tz)."""

    enabled: bool = True
    forecast_at: str = "12:00"  # local time of the daily forecast, "HH:MM" (or "HH:MM:SS")
    # Retrain before the forecast once the newest model is this many days old; a failed
    # training run is tried again at the next day's forecast time.
    retrain_every_days: int = 7


@dataclass(frozen=True)
class LogSection:
    level: str = "info"  # debug, info, warning, error
    format: str = "text"  # "text" (one line per event) or "json" (one object per line)


@dataclass(frozen=True)
class MetricsSection:
    # host:port of a Prometheus /metrics endpoint, e.g. "127.0.0.1:9464"; empty: none.
    listen: str = ""
    # Loopback only unless set: the numbers tell anyone who can reach them how busy the co-op is.
    allow_remote: bool = False


@dataclass(frozen=True)
class PortalSection:
    # host:port of the members' web portal, e.g. "127.0.0.1:8080"; empty: no portal.
    # Plain http only on loopback; anywhere else it serves https with the node's [tls] certificate.
    listen: str = ""
    # The address members type, when a proxy or a name sits in front ("https://coop.example");
    # empty: made from listen. Passkeys are bound to its host name.
    public_url: str = ""


@dataclass(frozen=True)
class OpenDataSection:
    # How often the running node publishes open data on its own: "monthly", "weekly", or ""
    # (never; `coopfed opendata publish` still does). Each publication goes in its own folder.
    every: str = ""
    out: str = "opendata"


@dataclass(frozen=True)
class Settings:
    """Every option has a default that works on one machine. Paths are relative to `base_dir`."""

    base_dir: Path = Path(".")
    node: NodeSection = field(default_factory=NodeSection)
    place: PlaceSection = field(default_factory=PlaceSection)
    storage: StorageSection = field(default_factory=StorageSection)
    policy: PolicySection = field(default_factory=PolicySection)
    tls: TlsSection = field(default_factory=TlsSection)
    federation: FederationSection = field(default_factory=FederationSection)
    forecast: ForecastSection = field(default_factory=ForecastSection)
    forecast_schedule: ForecastScheduleSection = field(default_factory=ForecastScheduleSection)
    log: LogSection = field(default_factory=LogSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    portal: PortalSection = field(default_factory=PortalSection)
    open_data: OpenDataSection = field(default_factory=OpenDataSection)

    def path(self, relative: str) -> Path:
        """Resolve a configured path against the config file's folder."""
        return (self.base_dir / relative).resolve()

    @property
    def keys_dir(self) -> Path:
        return self.path("keys")


_SECTIONS = {
    "node": NodeSection,
    "place": PlaceSection,
    "storage": StorageSection,
    "policy": PolicySection,
    "tls": TlsSection,
    "federation": FederationSection,
    "forecast": ForecastSection,
    "forecast_schedule": ForecastScheduleSection,
    "log": LogSection,
    "metrics": MetricsSection,
    "portal": PortalSection,
    "open_data": OpenDataSection,
}


def load_settings(config: Path | None, environ: dict[str, str] | None = None) -> Settings:
    """Build settings from a TOML file (optional) and COOPFED_<SECTION>__<KEY> variables."""
    raw: dict[str, dict[str, Any]] = {}
    base = Path(".").resolve()
    if config is not None:
        try:
            raw = tomllib.loads(Path(config).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidArgument(f"cannot read config {config}: {exc}", code="config.unreadable") from exc
        base = Path(config).resolve().parent
    for key, value in (os.environ if environ is None else environ).items():
        if key.startswith(ENV_PREFIX) and "__" in key:
            section, option = key[len(ENV_PREFIX) :].lower().split("__", 1)
            raw.setdefault(section, {})[option] = value
    return Settings(base_dir=base, **{name: _section(name, raw.get(name, {})) for name in _SECTIONS})


def _section(name: str, values: dict[str, Any]) -> Any:
    cls = _SECTIONS[name]
    defaults = cls()
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise InvalidArgument(
            f"unknown option(s) in [{name}]: {', '.join(sorted(unknown))}", code="config.unknown"
        )
    converted = {key: _coerce(name, key, value, getattr(defaults, key)) for key, value in values.items()}
    return replace(defaults, **converted)


def _coerce(section: str, key: str, value: Any, default: Any) -> Any:
    """Environment values arrive as strings; convert them to the default's type."""
    if isinstance(value, type(default)) and not isinstance(default, tuple):
        return value
    try:
        if isinstance(default, bool):
            if str(value).lower() not in {"true", "false", "1", "0"}:
                raise ValueError(value)
            return str(value).lower() in {"true", "1"}
        if isinstance(default, tuple):
            return tuple(value) if isinstance(value, list) else tuple(filter(None, str(value).split(",")))
        return type(default)(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(
            f"[{section}] {key} must be a {type(default).__name__}, got {value!r}",
            code="config.type",
        ) from exc


def render_toml(settings: Settings) -> str:
    """The settings as a commented TOML file, as `coopfed node init` writes it."""
    lines = ["# coopfed node configuration. Paths are relative to this file."]
    for name in _SECTIONS:
        lines.append(f"\n[{name}]")
        for f in fields(_SECTIONS[name]):
            lines.append(f"{f.name} = {_toml_value(getattr(getattr(settings, name), f.name))}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + "".join(_toml_char(c) for c in str(value)) + '"'


_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_char(c: str) -> str:
    """One character of a TOML basic string: quotes, backslashes and every control character
    escaped, so any name (a newline, an escape sequence) reads back as exactly itself."""
    if c in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[c]
    code = ord(c)
    if code < 0x20 or code == 0x7F:
        return f"\\u{code:04X}"
    if 0xD800 <= code <= 0xDFFF:
        raise InvalidArgument("a setting holds text that is not valid Unicode", code="config.text")
    return c
