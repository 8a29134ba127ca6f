"""TLS material, and mutual TLS between pinned nodes over real grpc.aio sockets."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from coopfed.federation.errors import KeyStoreError
from coopfed.federation.tls import (
    TlsIdentity,
    cert_fingerprint,
    channel_options,
    load_certificate,
    peer_fingerprint,
    pinned_roots,
)


@pytest.fixture(scope="module")
def node_a() -> TlsIdentity:
    return TlsIdentity.create("coop-a")


@pytest.fixture(scope="module")
def node_b() -> TlsIdentity:
    return TlsIdentity.create("coop-b")


@pytest.fixture(scope="module")
def stranger() -> TlsIdentity:
    return TlsIdentity.create("coop-b")  # same name as a pinned peer, different key


def test_certificate_names_the_node_and_loopback(node_a: TlsIdentity) -> None:
    cert = load_certificate(node_a.cert_pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"localhost", "coop-a"}
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=300)


def test_private_key_stays_out_of_repr(node_a: TlsIdentity) -> None:
    assert b"PRIVATE" in node_a.key_pem
    assert "PRIVATE" not in repr(node_a)


def test_fingerprint_is_sha256_of_der(node_a: TlsIdentity) -> None:
    der = load_certificate(node_a.cert_pem).public_bytes(serialization.Encoding.DER)
    assert node_a.fingerprint == ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    assert cert_fingerprint(node_a.cert_pem) == node_a.fingerprint


def test_identity_is_saved_owner_only_and_reloaded(tmp_path: Path) -> None:
    created = TlsIdentity.load_or_create(tmp_path / "tls", "coop-a")
    assert (tmp_path / "tls" / "tls.key").stat().st_mode & 0o777 == 0o600
    again = TlsIdentity.load_or_create(tmp_path / "tls", "coop-a")
    assert again == created
    with pytest.raises(KeyStoreError, match="coop-a"):
        TlsIdentity.load_or_create(tmp_path / "tls", "coop-b")


def test_mismatched_key_and_certificate_are_refused(tmp_path: Path, node_b: TlsIdentity) -> None:
    TlsIdentity.create("coop-a").save(tmp_path)
    (tmp_path / "tls.crt").write_bytes(node_b.cert_pem)
    with pytest.raises(KeyStoreError, match="does not match"):
        TlsIdentity.load(tmp_path)


@pytest.mark.parametrize("node_id", ["", "coop a", "-coop", "coop_a", "a" * 64, "ünïcode", "\u212aoop"])
def test_node_id_must_be_a_dns_name(node_id: str) -> None:
    with pytest.raises(ValueError, match="DNS"):
        TlsIdentity.create(node_id)


def test_pinning_nothing_or_a_ca_is_refused(node_a: TlsIdentity) -> None:
    with pytest.raises(KeyStoreError, match="no pinned"):
        node_a.server_credentials([])
    with pytest.raises(KeyStoreError, match="no pinned"):
        node_a.channel_credentials([])
    with pytest.raises(KeyStoreError):
        pinned_roots([b"not a certificate"])
    with pytest.raises(KeyStoreError, match="not a CA"):
        pinned_roots([_ca_certificate()])


def _ca_certificate() -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "some-ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


class RecordingHealth(health_aio.HealthServicer):
    """The standard health service, remembering the client certificate of each call."""

    def __init__(self) -> None:
        super().__init__()
        self.callers: list[str | None] = []

    async def Check(self, request, context):
        self.callers.append(peer_fingerprint(context))
        return await super().Check(request, context)


async def _call(
    server: TlsIdentity,
    server_pins: list[bytes],
    client_creds: grpc.ChannelCredentials,
    host: str = "127.0.0.1",
    options: list | None = None,
) -> tuple[grpc.StatusCode, list[str | None]]:
    """Serve health on node `server` (port 0) and make one Check call; return status and callers."""
    health = RecordingHealth()
    grpc_server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health, grpc_server)
    port = grpc_server.add_secure_port("127.0.0.1:0", server.server_credentials(server_pins))
    await grpc_server.start()
    try:
        async with grpc.aio.secure_channel(f"{host}:{port}", client_creds, options=options) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
                return grpc.StatusCode.OK, health.callers
            except grpc.aio.AioRpcError as exc:
                return exc.code(), health.callers
    finally:
        await grpc_server.stop(None)


@pytest.mark.integration
def test_mutual_tls_between_pinned_nodes(node_a: TlsIdentity, node_b: TlsIdentity) -> None:
    creds = node_b.channel_credentials([node_a.cert_pem])
    status, callers = asyncio.run(_call(node_a, [node_b.cert_pem], creds))
    assert status == grpc.StatusCode.OK
    assert callers == [node_b.fingerprint]  # the server sees which pinned peer is calling


@pytest.mark.integration
def test_server_name_is_checked_against_the_peer_node_id(node_a: TlsIdentity, node_b: TlsIdentity) -> None:
    creds = node_b.channel_credentials([node_a.cert_pem])
    ok, _ = asyncio.run(_call(node_a, [node_b.cert_pem], creds, options=channel_options("coop-a")))
    wrong, _ = asyncio.run(_call(node_a, [node_b.cert_pem], creds, options=channel_options("coop-z")))
    assert (ok, wrong) == (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE)
    local, _ = asyncio.run(_call(node_a, [node_b.cert_pem], creds, host="localhost"))
    assert local == grpc.StatusCode.OK


@pytest.mark.integration
def test_client_with_an_unpinned_certificate_is_refused(
    node_a: TlsIdentity, node_b: TlsIdentity, stranger: TlsIdentity
) -> None:
    creds = stranger.channel_credentials([node_a.cert_pem])
    status, callers = asyncio.run(_call(node_a, [node_b.cert_pem], creds))
    assert status == grpc.StatusCode.UNAVAILABLE
    assert callers == []


@pytest.mark.integration
def test_client_without_a_certificate_is_refused(node_a: TlsIdentity, node_b: TlsIdentity) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=node_a.cert_pem)
    status, callers = asyncio.run(_call(node_a, [node_b.cert_pem], creds))
    assert status == grpc.StatusCode.UNAVAILABLE
    assert callers == []


@pytest.mark.integration
def test_client_refuses_a_server_it_has_not_pinned(
    node_a: TlsIdentity, node_b: TlsIdentity, stranger: TlsIdentity
) -> None:
    creds = node_b.channel_credentials([stranger.cert_pem])
    status, callers = asyncio.run(_call(node_a, [node_b.cert_pem], creds))
    assert status == grpc.StatusCode.UNAVAILABLE
    assert callers == []
