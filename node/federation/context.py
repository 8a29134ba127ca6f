"""The node's federation context: TLS identity, federation state, settings and the addresses it serves."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from coopfed.federation.errors import KeyStoreError
from coopfed.federation.keys import read_private, write_private, write_public
from coopfed.federation.tls import TlsIdentity, cert_node_id, load_certificate
from coopfed.federation.tokens import DEFAULT_LEEWAY
from coopfed.node.errors import FailedPrecondition, InvalidArgument
from coopfed.node.federation.manifest import NODE_ID
from coopfed.node.federation.state import FederationState, import_files
from coopfed.node.settings import FederationSection, Settings
from coopfed.node.storage.federation import FederationStore

_WILDCARDS = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104 - names, not a bind


def check_node_id(node_id: str) -> None:
    """Node ids go into TLS certificates: DNS-style names only."""
    if not NODE_ID.fullmatch(node_id) or len(node_id) > 253:
        raise InvalidArgument(
            f"node id {node_id!r} must be a DNS-style name (lower-case letters, digits, '-', '.')",
            code="node.id",
            field="id",
        )


def create_tls(settings: Settings) -> TlsIdentity:
    """Create the node's TLS key and certificate at the configured paths, unless both exist."""
    cert_path, key_path = settings.path(settings.tls.cert), settings.path(settings.tls.key)
    if cert_path.exists() and key_path.exists():
        return load_tls(settings)
    identity = TlsIdentity.create(settings.node.id)
    for path in (cert_path, key_path):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(key_path, identity.key_pem)
    write_public(cert_path, identity.cert_pem)
    return identity


def load_tls(settings: Settings) -> TlsIdentity:
    """The node's TLS identity from the configured files; the certificate must name the node."""
    cert_path, key_path = settings.path(settings.tls.cert), settings.path(settings.tls.key)
    try:
        cert_pem = cert_path.read_bytes()
        key_pem = read_private(key_path)
        cert = load_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (OSError, ValueError, TypeError, KeyStoreError) as exc:
        raise FailedPrecondition(
            f"cannot load the node's TLS identity ({cert_path}, {key_path}): {exc}", code="federation.tls"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise FailedPrecondition(f"{key_path} is not the key of {cert_path}", code="federation.tls")
    named = cert_node_id(cert_pem)
    if named != settings.node.id:
        raise FailedPrecondition(
            f"{cert_path} is made out to {named!r}, but this node is {settings.node.id!r}",
            code="federation.tls",
        )
    return TlsIdentity(named, key_pem, cert_pem)


def _host(address: str) -> str:
    return address.rsplit(":", 1)[0]


class UsedOnce:
    """The jtis of peer access tokens already presented, kept until they expire: a peer's token
    works for one call, so one seen on the wire (or in a log) cannot be replayed."""

    def __init__(self, leeway: int) -> None:
        self._until: dict[str, int] = {}  # jti -> when it stops verifying anyway
        self._leeway = leeway
        self._lock = threading.Lock()

    def first_use(self, jti: str, expires_at: int, now: int) -> bool:
        with self._lock:
            if len(self._until) >= 4096:  # tokens live two minutes: forget the expired ones
                self._until = {j: t for j, t in self._until.items() if t >= now}
            if jti in self._until:
                return False
            self._until[jti] = expires_at + self._leeway
            return True


@dataclass
class Federation:
    """What the federation code needs besides the node's keys, policy and logs."""

    conf: FederationSection
    tls: TlsIdentity
    state: FederationState
    node_id: str
    name: str  # the co-op's name, as its manifest shows it
    public_listen: str
    ports: dict[str, int] = field(default_factory=dict)  # "public" / "peer" -> bound port
    used_access_tokens: UsedOnce = field(default_factory=lambda: UsedOnce(DEFAULT_LEEWAY), repr=False)

    @property
    def enabled(self) -> bool:
        return bool(self.conf.listen)

    def advertised(self) -> dict[str, str]:
        """host:port of the public and peer ports, as peers should dial them."""
        return {
            "public": self._advertise(self.public_listen, self.ports.get("public")),
            "peer": self._advertise(self.conf.listen, self.ports.get("peer")),
        }

    def _advertise(self, listen: str, bound: int | None) -> str:
        host, port = _host(listen), listen.rsplit(":", 1)[-1] if listen else "0"
        if self.conf.advertise_host:
            host = self.conf.advertise_host
        elif host in _WILDCARDS:
            host = self.node_id
        if bound:
            port = str(bound)
        return f"{host}:{port}"


def open_federation(settings: Settings, store: FederationStore) -> Federation:
    """The federation context of a node, its TLS identity created if it has none yet; the state
    files of an earlier release are imported into `store` on first open."""
    identity = create_tls(settings)
    import_files(settings.path(settings.federation.dir), store, settings.node.id)
    state = FederationState(store, settings.node.id)
    return Federation(
        conf=settings.federation,
        tls=identity,
        state=state,
        node_id=settings.node.id,
        name=settings.node.name,
        public_listen=settings.node.listen,
    )


def default_peer_listen(public_listen: str) -> str:
    """The peer port next to the public one: port + 1, or an ephemeral port for port 0."""
    host, _, port = public_listen.rpartition(":")
    number = int(port) if port.isdigit() else 0
    return f"{host}:{number + 1 if number else 0}"
