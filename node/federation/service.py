"""FederationService: manifests, revocations, grant requests and aggregate streams for peers."""

from __future__ import annotations

import asyncio

import grpc

from coopfed.federation.revocation import DEFAULT_PUBLICATION_TTL
from coopfed.node.auth import caller
from coopfed.node.federation import convert, witness
from coopfed.node.federation.aggregates import (
    Release,
    Series,
    check_live,
    log_access,
    log_release,
    plan_release,
    release_capacity,
    release_series,
)
from coopfed.node.federation.issuer import GRANTEE, PEER, check_peer, federation_of, grant_for_peer
from coopfed.node.federation.manifest import own_manifest
from coopfed.node.rpc import rpc
from coopfed.node.runtime import Node
from coopfed.v1 import federation_pb2, federation_pb2_grpc

SERVICE_NAME = federation_pb2.DESCRIPTOR.services_by_name["FederationService"].full_name


class FederationService(federation_pb2_grpc.FederationServiceServicer):
    def __init__(self, node: Node) -> None:
        self.node = node

    @rpc
    async def GetManifest(self, request, context):
        return own_manifest(self.node).to_proto()

    @rpc
    async def GetRevocations(self, request, context):
        await check_peer(self.node, caller(), PEER, context)  # which grants were revoked is for peers only
        fed = federation_of(self.node)
        # Valid for a day at most, and never beyond a few refresh intervals: a stale list expires.
        ttl = min(DEFAULT_PUBLICATION_TTL, 4 * max(fed.conf.refresh_interval_s, 60))
        token = await asyncio.to_thread(lambda: fed.state.revocations().publish(fed.keys(self.node), ttl=ttl))
        return federation_pb2.RevocationPublication(token=token)

    @rpc
    async def RequestGrant(self, request, context):
        peer = await check_peer(self.node, caller(), PEER, context)
        ask = convert.ask_from_proto(request)
        token, grant, decision = await asyncio.to_thread(grant_for_peer, self.node, peer, ask)
        return federation_pb2.PeerGrantResponse(
            token=token,
            grant=convert.grant_to_proto(grant),
            reasons=list(decision.reasons),
            policy_hash=decision.revision,
        )

    @rpc
    async def FetchAggregates(self, request, context):
        principal = caller()
        peer = await check_peer(self.node, principal, GRANTEE, context)
        grant = principal.claims["grant"]
        datasets = convert.names(request.datasets, "datasets")
        period = convert.period_from_proto(request.period) if request.HasField("period") else None
        recipient = (peer.peer_id, peer.manifest.name)
        release = await asyncio.to_thread(plan_release, self.node, grant, datasets, period, recipient)
        release = await asyncio.to_thread(log_release, self.node, release)
        everything = await asyncio.to_thread(_release, self.node, release)
        installed = await asyncio.to_thread(release_capacity, self.node, release)
        yield convert.header_to_proto(release, self.node.policy.revision, release.decision_id, installed)
        released = suppressed = 0
        chunk = max(1, federation_of(self.node).conf.series_chunk)
        for series in everything:
            released += series.periods.size
            suppressed += series.suppressed.size
            for part in series.chunks(chunk):
                await asyncio.to_thread(check_live, self.node, grant)  # a revocation stops the stream
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
        peer = await check_peer(self.node, caller(), PEER, context)
        return await asyncio.to_thread(witness.exchange, self.node, peer.peer_id, request.head)


class PublicManifestService(federation_pb2_grpc.FederationServiceServicer):
    """FederationService as the public port serves it: the manifest for first contact; every
    other method UNIMPLEMENTED, so grants, aggregates and revocation lists are reachable only
    over the mutual-TLS peer port."""

    def __init__(self, node: Node) -> None:
        self.node = node

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


def _release(node: Node, release: Release) -> list[Series]:
    """Every dataset's series, and the members' access-log entries for them, before anything is sent."""
    everything = [release_series(node, release, dataset) for dataset in release.datasets]
    log_access(node, release, everything)
    return everything
