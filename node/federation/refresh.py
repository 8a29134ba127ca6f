"""Keeping up with peers: their key rotations, aims and revocation lists, every refresh interval."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import grpc

from coopfed.federation.errors import FederationError
from coopfed.federation.revocation import verify_publication
from coopfed.node.errors import CoopfedError, FailedPrecondition
from coopfed.node.federation import witness
from coopfed.node.federation.client import PeerClient
from coopfed.node.federation.decide import decide_alignment
from coopfed.node.federation.issuer import federation_of
from coopfed.node.federation.manifest import Manifest
from coopfed.node.federation.state import PeerRecord
from coopfed.node.policy import PolicyError

if TYPE_CHECKING:
    from coopfed.node.runtime import Node

log = logging.getLogger(__name__)


@dataclass
class RefreshReport:
    """What one refresh of every pinned peer found."""

    refreshed: list[str] = field(default_factory=list)
    rekeyed: list[str] = field(default_factory=list)  # peers whose pinned keys changed
    newly_revoked: list[str] = field(default_factory=list)  # jtis of held grants now revoked
    failures: dict[str, str] = field(default_factory=dict)  # peer -> what went wrong


def updated_record(node: Node, record: PeerRecord, manifest: Manifest) -> PeerRecord:
    """The pinned record updated from a manifest fetched over the pinned mutual-TLS channel.

    Keys may rotate as long as one pinned key carries over (a peer adds a key, signs with it,
    and retires the old one only after its peers refreshed). A new certificate, or keys with no
    key in common with the pinned ones, need the operator to join the peer again.
    """
    pinned = record.manifest
    if manifest.tls_certificate_pem != pinned.tls_certificate_pem:
        raise FailedPrecondition(
            f"{record.peer_id} now publishes another TLS certificate; join it again to pin it",
            code="federation.repin",
        )
    if not set(manifest.jwks) & set(pinned.jwks):
        raise FailedPrecondition(
            f"{record.peer_id} replaced all its signing keys at once; join it again to pin them",
            code="federation.repin",
        )
    alignment = decide_alignment(node.policy, manifest)
    if record.aligned and not alignment.aligned:
        log.warning("peer %s is no longer aligned: %s", record.peer_id, " ".join(alignment.reasons))
    return replace(
        record,
        manifest=manifest,
        updated_at=int(time.time()),
        aligned=alignment.aligned,
        reasons=alignment.reasons,
    )


async def _repin(node: Node, client: PeerClient, record: PeerRecord) -> PeerRecord:
    fresh = await asyncio.to_thread(updated_record, node, record, await client.manifest())
    await asyncio.to_thread(federation_of(node).state.pin, fresh)
    return fresh


async def repin(node: Node, peer_id: str) -> PeerRecord:
    """Fetch one peer's manifest now (e.g. on meeting a key id not pinned yet) and re-pin it."""
    fed = federation_of(node)
    record = await asyncio.to_thread(fed.state.peer, peer_id)
    async with PeerClient(fed, fed.keys(node), record) as client:
        return await _repin(node, client, record)


async def refresh_peer(node: Node, record: PeerRecord, report: RefreshReport) -> None:
    fed = federation_of(node)
    async with PeerClient(fed, fed.keys(node), record) as client:
        fresh = await _repin(node, client, record)
        if set(fresh.manifest.jwks) != set(record.manifest.jwks):
            report.rekeyed.append(record.peer_id)
        token = await client.revocations()
        await witness.exchange_with(node, client)
    report.newly_revoked += await asyncio.to_thread(_store_revocations, node, record, token)
    report.refreshed.append(record.peer_id)


def _store_revocations(node: Node, record: PeerRecord, token: str) -> list[str]:
    """Verify the peer's revocation list against the last one stored, and store it; the jtis of
    held grants it newly revokes."""
    fed = federation_of(node)
    previous = fed.state.peer_revocations(record.peer_id)
    published = verify_publication(
        token,
        trust=fed.state.peer_trust(),
        issuer=record.peer_id,
        previous=previous.revocations if previous else None,
    )
    return fed.state.store_peer_revocations(record.peer_id, published)


async def refresh_all(node: Node) -> RefreshReport:
    """Refresh every pinned peer; one peer's failure is reported and does not stop the others."""
    fed = federation_of(node)
    await asyncio.to_thread(fed.keys, node)  # pick up this node's own rotation too
    report = RefreshReport()
    for record in await asyncio.to_thread(lambda: list(fed.state.peers().values())):
        try:
            await refresh_peer(node, record, report)
        except (grpc.RpcError, CoopfedError, FederationError, PolicyError, ValueError) as exc:
            report.failures[record.peer_id] = _describe(exc)
            log.warning("refreshing peer %s failed: %s", record.peer_id, report.failures[record.peer_id])
    for jti in report.newly_revoked:
        log.warning("a grant held by this node was revoked by its issuer: %s", jti)
    return report


def _describe(exc: Exception) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return getattr(exc, "message", None) or str(exc)


async def refresh_forever(node: Node, on_refresh: Callable[[RefreshReport], None] | None = None) -> None:
    """Refresh now and then every `refresh_interval_s`, until cancelled."""
    interval = max(1, federation_of(node).conf.refresh_interval_s)
    while True:
        try:
            report = await refresh_all(node)
        except Exception:
            log.exception("refreshing peers failed")
        else:
            if on_refresh is not None:
                on_refresh(report)
        await asyncio.sleep(interval)
