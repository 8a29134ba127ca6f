"""A node's TLS key and self-signed certificate, and mutual-TLS gRPC credentials from pinned peers.

Keys are ECDSA P-256: gRPC's BoringSSL refuses Ed25519 certificates in the handshake
(NO_COMMON_SIGNATURE_ALGORITHMS), so the signing keys (Ed25519) and the TLS keys differ.
Peers trust each other by pinning certificates exchanged at join time, not through a CA: the
pinned certificates are the only roots, and they cannot issue others (CA:FALSE).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from coopfed.federation.errors import KeyStoreError
from coopfed.federation.keys import format_fingerprint, read_private, write_private, write_public

DEFAULT_VALIDITY_DAYS = 397  # the longest lifetime browsers still accept; re-created yearly
_HOSTNAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*", re.IGNORECASE | re.ASCII)
_KEY_FILE, _CERT_FILE = "tls.key", "tls.crt"


def load_certificate(pem: bytes) -> x509.Certificate:
    """Parse exactly one PEM certificate."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise KeyStoreError("not a PEM certificate") from exc
    if len(certs) != 1:
        raise KeyStoreError("expected exactly one certificate")
    return certs[0]


def cert_fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the certificate's DER, colon-separated hex (as `openssl x509 -fingerprint`)."""
    der = load_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return format_fingerprint(hashlib.sha256(der).digest())


def cert_node_id(cert_pem: bytes) -> str:
    """The node id a certificate was made for (its subject common name)."""
    names = load_certificate(cert_pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise KeyStoreError("certificate has no common name")
    return str(names[0].value)


def _build_certificate(
    node_id: str, key: ec.EllipticCurvePrivateKey, now: dt.datetime, days: int
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)])
    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.DNSName(node_id),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    eku = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate peers' clock skew
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        .sign(key, hashes.SHA256())
    )


@dataclass(frozen=True)
class TlsIdentity:
    """A node's TLS private key and certificate (PEM). Files: `tls.key` (0600) and `tls.crt`."""

    node_id: str
    key_pem: bytes = field(repr=False)  # never in logs
    cert_pem: bytes

    @classmethod
    def create(
        cls, node_id: str, *, days: int = DEFAULT_VALIDITY_DAYS, now: dt.datetime | None = None
    ) -> TlsIdentity:
        """A fresh P-256 key and a self-signed certificate for `node_id`, localhost and loopback."""
        if not _HOSTNAME.fullmatch(node_id) or len(node_id) > 253:
            raise ValueError("node id must be a DNS-style name (letters, digits, '-', '.')")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _build_certificate(node_id, key, now or dt.datetime.now(dt.UTC), days)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(node_id, key_pem, cert.public_bytes(serialization.Encoding.PEM))

    @classmethod
    def load(cls, directory: str | Path) -> TlsIdentity:
        directory = Path(directory)
        try:
            cert_pem = (directory / _CERT_FILE).read_bytes()
        except OSError as exc:
            raise KeyStoreError(f"cannot read {directory / _CERT_FILE}") from exc
        key_pem = read_private(directory / _KEY_FILE)
        identity = cls(cert_node_id(cert_pem), key_pem, cert_pem)
        identity._check_pair()
        return identity

    @classmethod
    def load_or_create(cls, directory: str | Path, node_id: str) -> TlsIdentity:
        if (Path(directory) / _CERT_FILE).exists():
            identity = cls.load(directory)
            if identity.node_id != node_id:
                raise KeyStoreError(f"TLS certificate in {directory} is for {identity.node_id}")
            return identity
        identity = cls.create(node_id)
        identity.save(directory)
        return identity

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(directory / _KEY_FILE, self.key_pem)
        write_public(directory / _CERT_FILE, self.cert_pem)

    def _check_pair(self) -> None:
        try:
            key = serialization.load_pem_private_key(self.key_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyStoreError("TLS key is not an unencrypted PEM private key") from exc
        cert_key = load_certificate(self.cert_pem).public_key()
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert_key:
            raise KeyStoreError("TLS key does not match the certificate")

    @property
    def fingerprint(self) -> str:
        return cert_fingerprint(self.cert_pem)

    @property
    def not_valid_after(self) -> dt.datetime:
        return load_certificate(self.cert_pem).not_valid_after_utc

    def server_credentials(self, pinned_peers: Iterable[bytes]) -> grpc.ServerCredentials:
        """Server side of mutual TLS: clients must present one of the pinned certificates."""
        return grpc.ssl_server_credentials(
            [(self.key_pem, self.cert_pem)],
            root_certificates=pinned_roots(pinned_peers),
            require_client_auth=True,
        )

    def channel_credentials(self, pinned_peers: Iterable[bytes]) -> grpc.ChannelCredentials:
        """Client side of mutual TLS: present our certificate, accept only pinned servers."""
        return grpc.ssl_channel_credentials(
            root_certificates=pinned_roots(pinned_peers),
            private_key=self.key_pem,
            certificate_chain=self.cert_pem,
        )


def pinned_roots(pinned_peers: Iterable[bytes]) -> bytes:
    """Concatenate pinned certificates into a root bundle; none pinned is an error, never 'trust all'."""
    certs = [p if p.endswith(b"\n") else p + b"\n" for p in pinned_peers]
    if not certs:
        raise KeyStoreError("no pinned peer certificates: refusing to build TLS credentials")
    if any(_is_ca(load_certificate(pem)) for pem in certs):
        # a pinned CA would let it vouch for certificates nobody pinned
        raise KeyStoreError("a pinned certificate must be a node certificate, not a CA")
    return b"".join(certs)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def channel_options(peer_node_id: str) -> Sequence[tuple[str, Any]]:
    """Channel options to check the server's certificate names `peer_node_id`, whatever the
    address dialled (e.g. an IP address or a load balancer's name)."""
    return [("grpc.ssl_target_name_override", peer_node_id)]


def peer_fingerprint(context: grpc.ServicerContext | grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """SHA-256 fingerprint of the client certificate of the current call, or None without TLS."""
    # Both contexts give each property as a list of values; the stubs type the sync one as bare bytes.
    auth = cast(Mapping[str, Sequence[bytes]], context.auth_context())
    pems = auth.get("x509_pem_cert")
    return cert_fingerprint(pems[0]) if pems else None


def is_loopback(address: str) -> bool:
    """Whether host:port (or a bare host) names this machine: the only place plaintext is allowed."""
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 or address.startswith("[") else address
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
