"""Keeping up with peers: their key rotations, aims and revocation lists, every refresh interval."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import grpc

from coopfed.federation.errors import FederationError
from coopfed.federation.keys import KeyRing
from coopfed.federation.revocation import verify_publication
from coopfed.node.errors import CoopfedError, FailedPrecondition
from coopfed.node.federation import witness
from coopfed.node.federation.client import PeerClient
from coopfed.node.federation.context import Federation
from coopfed.node.federation.decide import decide_alignment
from coopfed.node.federation.manifest import Manifest
from coopfed.node.federation.state import FederationState, PeerRecord
from coopfed.node.policy import PolicyError
from coopfed.node.policy.holder import PolicyHolder
from coopfed.node.storage.governance import GovernanceStore

log = logging.getLogger(__name__)


@dataclass
class RefreshReport:
    """What one refresh of every pinned peer found."""

    refreshed: list[str] = field(default_factory=list)
    rekeyed: list[str] = field(default_factory=list)  # peers whose pinned keys changed
    newly_revoked: list[str] = field(default_factory=list)  # jtis of held grants now revoked
    failures: dict[str, str] = field(default_factory=dict)  # peer -> what went wrong


def updated_record(policy: PolicyHolder, record: PeerRecord, manifest: Manifest) -> PeerRecord:
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
    alignment = decide_alignment(policy, manifest)
    if record.aligned and not alignment.aligned:
        log.warning("peer %s is no longer aligned: %s", record.peer_id, " ".join(alignment.reasons))
    return replace(
        record,
        manifest=manifest,
        updated_at=int(time.time()),
        aligned=alignment.aligned,
        reasons=alignment.reasons,
    )


async def _repin(
    policy: PolicyHolder, state: FederationState, client: PeerClient, record: PeerRecord
) -> PeerRecord:
    fresh = await asyncio.to_thread(updated_record, policy, record, await client.manifest())
    await asyncio.to_thread(state.pin, fresh)
    return fresh


async def repin(fed: Federation, keys: KeyRing, policy: PolicyHolder, peer_id: str) -> PeerRecord:
    """Fetch one peer's manifest now (e.g. on meeting a key id not pinned yet) and re-pin it."""
    record = await asyncio.to_thread(fed.state.peer, peer_id)
    async with PeerClient(fed, keys, record) as client:
        return await _repin(policy, fed.state, client, record)


def _store_revocations(state: FederationState, record: PeerRecord, token: str) -> list[str]:
    """Verify the peer's revocation list against the last one stored, and store it; the jtis of
    held grants it newly revokes."""
    previous = state.peer_revocations(record.peer_id)
    published = verify_publication(
        token,
        trust=state.peer_trust(),
        issuer=record.peer_id,
        previous=previous.revocations if previous else None,
    )
    return state.store_peer_revocations(record.peer_id, published)


class PeerRefresh:
    """Every refresh interval: each pinned peer's manifest, revocation list and decision-log head."""

    def __init__(
        self, fed: Federation, keys: KeyRing, policy: PolicyHolder, governance: GovernanceStore
    ) -> None:
        self.fed, self.keys, self.policy, self.governance = fed, keys, policy, governance

    async def refresh_peer(self, record: PeerRecord, report: RefreshReport) -> None:
        state = self.fed.state
        async with PeerClient(self.fed, self.keys, record) as client:
            fresh = await _repin(self.policy, state, client, record)
            if set(fresh.manifest.jwks) != set(record.manifest.jwks):
                report.rekeyed.append(record.peer_id)
            token = await client.revocations()
            await witness.exchange_with(self.governance, state, client)
        report.newly_revoked += await asyncio.to_thread(_store_revocations, state, record, token)
        report.refreshed.append(record.peer_id)

    async def refresh_all(self) -> RefreshReport:
        """Refresh every pinned peer; one peer's failure is reported and does not stop the others."""
        report = RefreshReport()
        for record in await asyncio.to_thread(lambda: list(self.fed.state.peers().values())):
            try:
                await self.refresh_peer(record, report)
            except (grpc.RpcError, CoopfedError, FederationError, PolicyError, ValueError) as exc:
                report.failures[record.peer_id] = _describe(exc)
                log.warning("refreshing peer %s failed: %s", record.peer_id, report.failures[record.peer_id])
        for jti in report.newly_revoked:
            log.warning("a grant held by this node was revoked by its issuer: %s", jti)
        return report

    async def run(self, on_refresh: Callable[[RefreshReport], None] | None = None) -> None:
        """Refresh now and then every `refresh_interval_s`, until cancelled."""
        interval = max(1, self.fed.conf.refresh_interval_s)
        while True:
            try:
                report = await self.refresh_all()
            except Exception:
                log.exception("refreshing peers failed")
            else:
                if on_refresh is not None:
                    on_refresh(report)
            await asyncio.sleep(interval)


def _describe(exc: Exception) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return getattr(exc, "message", None) or str(exc)
