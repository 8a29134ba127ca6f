"""Calling peers: the first contact before pinning, and mutual TLS to a pinned peer after it."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from coopfed.federation.keys import KeyRing
from coopfed.federation.tls import cert_fingerprint, cert_node_id, channel_options, is_loopback
from coopfed.federation.tokens import TokenUse, issue_token
from coopfed.node.client import bearer
from coopfed.node.errors import FailedPrecondition
from coopfed.node.federation.context import Federation
from coopfed.node.federation.manifest import Manifest, manifest_from_proto
from coopfed.node.federation.state import PeerRecord
from coopfed.v1 import federation_pb2, federation_pb2_grpc

CALL_TIMEOUT = 30.0
FETCH_TIMEOUT = 300.0
_MAX_MESSAGE = 64 * 1024 * 1024  # a series message of a year is about 1 MiB; leave room


@dataclass(frozen=True)
class FirstContact:
    """A peer's manifest fetched before it was pinned, and how the channel was secured."""

    manifest: Manifest
    transport: str  # "plaintext (loopback)", "TLS, CA-verified" or "TLS, trust on first use"
    presented_fingerprint: str = ""  # the public port's certificate, where TLS was used


def _presented_certificate(address: str, timeout: float = 10.0) -> bytes:
    """The certificate a TLS server presents, unverified: trust on first use, confirmed by a person."""
    host, _, port = address.rpartition(":")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock,
        ctx.wrap_socket(sock, server_hostname=host.strip("[]")) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise FailedPrecondition(f"{address} presented no certificate", code="federation.no_certificate")
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


async def first_contact(address: str, *, plaintext: bool = False, ca: Path | None = None) -> FirstContact:
    """Fetch a peer's manifest from its public port, to show it before anything is pinned."""
    options = [("grpc.max_receive_message_length", _MAX_MESSAGE)]
    presented = ""
    if plaintext:
        if not is_loopback(address):
            raise FailedPrecondition("plaintext is allowed only on loopback", code="federation.plaintext")
        channel, transport = grpc.aio.insecure_channel(address, options=options), "plaintext (loopback)"
    elif ca is not None:
        creds = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
        channel, transport = grpc.aio.secure_channel(address, creds, options=options), "TLS, CA-verified"
    else:
        pem = await asyncio.to_thread(_presented_certificate, address)
        presented = cert_fingerprint(pem)
        creds = grpc.ssl_channel_credentials(root_certificates=pem)
        options += list(channel_options(cert_node_id(pem)))
        channel, transport = (
            grpc.aio.secure_channel(address, creds, options=options),
            "TLS, trust on first use",
        )
    async with channel:
        stub = federation_pb2_grpc.FederationServiceStub(channel)
        msg = await stub.GetManifest(federation_pb2.GetManifestRequest(), timeout=CALL_TIMEOUT)
    return FirstContact(manifest_from_proto(msg), transport, presented)


def access_token(fed: Federation, ring: KeyRing, peer_id: str) -> str:
    """A short-lived token signed with this node's key, for one peer only."""
    return issue_token(
        ring,
        issuer=fed.node_id,
        subject=fed.node_id,
        audience=peer_id,
        use=TokenUse.ACCESS,
        ttl=fed.conf.access_token_ttl_s,
    )


class PeerClient:
    """Calls to one pinned peer on its peer port: mutual TLS, only the peer's pinned certificate
    accepted as the server, this node's own certificate presented as the client."""

    def __init__(self, fed: Federation, ring: KeyRing, peer: PeerRecord) -> None:
        self.fed, self.ring, self.peer = fed, ring, peer
        address = peer.manifest.endpoints["peer"]
        # Mutual TLS even with [federation] plaintext: the pinned certificate is the peer's identity.
        options = [("grpc.max_receive_message_length", _MAX_MESSAGE), *channel_options(peer.peer_id)]
        creds = fed.tls.channel_credentials([peer.manifest.tls_certificate_pem])
        self.channel = grpc.aio.secure_channel(address, creds, options=options)
        self.stub = federation_pb2_grpc.FederationServiceStub(self.channel)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.channel.close()

    def access_token(self) -> str:
        return access_token(self.fed, self.ring, self.peer.peer_id)

    async def metadata(self) -> tuple[tuple[str, str], ...]:
        """A fresh access token as call metadata, signed off the event loop (the ring reads its
        index file first, to see a rotation)."""
        return bearer(await asyncio.to_thread(self.access_token))

    async def manifest(self) -> Manifest:
        msg = await self.stub.GetManifest(federation_pb2.GetManifestRequest(), timeout=CALL_TIMEOUT)
        return manifest_from_proto(msg, expect_id=self.peer.peer_id)

    async def revocations(self) -> str:
        md = await self.metadata()
        reply = await self.stub.GetRevocations(
            federation_pb2.GetRevocationsRequest(), metadata=md, timeout=CALL_TIMEOUT
        )
        return reply.token

    async def request_grant(
        self, request: federation_pb2.PeerGrantRequest
    ) -> federation_pb2.PeerGrantResponse:
        md = await self.metadata()
        return await self.stub.RequestGrant(request, metadata=md, timeout=CALL_TIMEOUT)

    async def exchange_heads(self, head: str) -> federation_pb2.ExchangeLogHeadsResponse:
        request = federation_pb2.ExchangeLogHeadsRequest(head=head)
        md = await self.metadata()
        return await self.stub.ExchangeLogHeads(request, metadata=md, timeout=CALL_TIMEOUT)

    def fetch(
        self, grant_token: str, request: federation_pb2.FetchAggregatesRequest
    ) -> AsyncIterable[federation_pb2.AggregatesChunk]:
        return self.stub.FetchAggregates(request, metadata=bearer(grant_token), timeout=FETCH_TIMEOUT)
