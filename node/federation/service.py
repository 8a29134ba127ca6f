"""FederationService: manifests, revocations, grant requests and aggregate streams for peers."""

from __future__ import annotations

import asyncio

import grpc

from coopfed.federation.keys import KeyRing
from coopfed.federation.revocation import DEFAULT_PUBLICATION_TTL
from coopfed.node.auth import caller
from coopfed.node.convert import period_from_proto
from coopfed.node.decisionlog import DecisionLog
from coopfed.node.federation import convert, witness
from coopfed.node.federation.aggregates import PeerReleases, Release, Series
from coopfed.node.federation.context import Federation
from coopfed.node.federation.issuer import GRANTEE, PEER, check_peer, grant_for_peer
from coopfed.node.federation.manifest import own_manifest
from coopfed.node.policy.holder import PolicyHolder
from coopfed.node.rpc import rpc
from coopfed.node.storage.governance import GovernanceStore
from coopfed.v1 import federation_pb2, federation_pb2_grpc

SERVICE_NAME = federation_pb2.DESCRIPTOR.services_by_name["FederationService"].full_name


class FederationService(federation_pb2_grpc.FederationServiceServicer):
    def __init__(
        self,
        *,
        fed: Federation,
        keys: KeyRing,
        policy: PolicyHolder,
        governance: GovernanceStore,
        decision_log: DecisionLog,
        releases: PeerReleases,
    ) -> None:
        self.fed, self.keys, self.policy = fed, keys, policy
        self.governance, self.decision_log, self.releases = governance, decision_log, releases

    @rpc
    async def GetManifest(self, request, context):
        manifest = await asyncio.to_thread(
            own_manifest, self.fed, self.keys, self.policy
        )  # the ring reads its file
        return manifest.to_proto()

    @rpc
    async def GetRevocations(self, request, context):
        await check_peer(
            self.fed.state, caller(), PEER, context
        )  # which grants were revoked is for peers only
        fed = self.fed
        # Valid for a day at most, and never beyond a few refresh intervals: a stale list expires.
        ttl = min(DEFAULT_PUBLICATION_TTL, 4 * max(fed.conf.refresh_interval_s, 60))
        token = await asyncio.to_thread(lambda: fed.state.revocations().publish(self.keys, ttl=ttl))
        return federation_pb2.RevocationPublication(token=token)

    @rpc
    async def RequestGrant(self, request, context):
        peer = await check_peer(self.fed.state, caller(), PEER, context)
        ask = convert.ask_from_proto(request)
        token, grant, decision = await asyncio.to_thread(
            grant_for_peer, self.fed, self.keys, self.policy, self.decision_log, peer, ask
        )
        return federation_pb2.PeerGrantResponse(
            token=token,
            grant=convert.grant_to_proto(grant),
            reasons=list(decision.reasons),
            policy_hash=decision.revision,
        )

    @rpc
    async def FetchAggregates(self, request, context):
        principal = caller()
        peer = await check_peer(self.fed.state, principal, GRANTEE, context)
        grant = principal.claims["grant"]
        datasets = convert.names(request.datasets, "datasets")
        period = (
            period_from_proto(request.period, code="grant.period") if request.HasField("period") else None
        )
        recipient = (peer.peer_id, peer.manifest.name)
        releases = self.releases
        release = await asyncio.to_thread(releases.plan, grant, datasets, period, recipient)
        release = await asyncio.to_thread(releases.log, release)
        everything = await asyncio.to_thread(self._release, release)
        installed = await asyncio.to_thread(releases.capacity, release)
        yield convert.header_to_proto(release, self.policy.revision, release.decision_id, installed)
        released = suppressed = 0
        chunk = max(1, self.fed.conf.series_chunk)
        for series in everything:
            released += series.periods.size
            suppressed += series.suppressed.size
            for part in series.chunks(chunk):
                await asyncio.to_thread(releases.check_live, grant)  # a revocation stops the stream
                yield convert.series_to_proto(part)
        yield federation_pb2.AggregatesChunk(
            summary=federation_pb2.AggregatesSummary(
                cells_released=released,
                cells_suppressed=suppressed,
                profiles_included=release.profiles_included,
                profiles_excluded=release.profiles_total - release.profiles_included,
            )
        )

    @rpc
    async def ExchangeLogHeads(self, request, context):
        peer = await check_peer(self.fed.state, caller(), PEER, context)
        return await asyncio.to_thread(
            witness.exchange, self.governance, self.fed.state, peer.peer_id, request.head
        )

    def _release(self, release: Release) -> list[Series]:
        """Every dataset's series, and the members' access-log entries for them, before anything is sent."""
        everything = [self.releases.series(release, dataset) for dataset in release.datasets]
        self.releases.log_access(release, everything)
        return everything


class PublicManifestService(federation_pb2_grpc.FederationServiceServicer):
    """FederationService as the public port serves it: the manifest for first contact; every
    other method UNIMPLEMENTED, so grants, aggregates and revocation lists are reachable only
    over the mutual-TLS peer port."""

    def __init__(self, *, fed: Federation, keys: KeyRing, policy: PolicyHolder) -> None:
        self.fed, self.keys, self.policy = fed, keys, policy

    GetManifest = FederationService.GetManifest

    async def GetRevocations(self, request, context):
        await _peer_port_only(context)

    async def RequestGrant(self, request, context):
        await _peer_port_only(context)

    async def FetchAggregates(self, request, context):
        await _peer_port_only(context)
        yield  # a server stream

    async def ExchangeLogHeads(self, request, context):
        await _peer_port_only(context)


async def _peer_port_only(context: grpc.aio.ServicerContext) -> None:
    await context.abort(
        grpc.StatusCode.UNIMPLEMENTED,
        "this method is served only on the peer port, over mutual TLS with a pinned certificate",
    )
