"""Model federation between pinned, aligned peers over the mutual-TLS peer port: a co-op
publishes its newest local model to each peer and fetches theirs; every artifact is verified
against its trainer's pinned keys before it is kept."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc
from grpc_status import rpc_status

from coopfed.node.auth import caller
from coopfed.node.errors import FailedPrecondition, NotFound, PermissionDenied, as_coopfed_error
from coopfed.node.federation.client import CALL_TIMEOUT, PeerClient
from coopfed.node.federation.issuer import PEER, check_peer
from coopfed.node.federation.state import PeerRecord
from coopfed.node.rpc import rpc
from coopfed.v1 import common_pb2
from coopfed.v1 import forecast_pb2 as pb
from coopfed.v1 import forecast_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from coopfed.federation.keys import KeyRing
    from coopfed.node.federation.context import Federation
    from coopfed.node.forecast.context import ForecastContext

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ModelExchangeService"].full_name
STALE = "forecast.stale_model"  # the receiver holds this version or a newer one


def _aligned(peer: PeerRecord) -> PeerRecord:
    if not peer.aligned:
        raise PermissionDenied(
            f"{peer.peer_id} is pinned but not aligned with this co-op: no models are exchanged",
            code="forecast.not_aligned",
        )
    return peer


class ModelExchangeService(pb_grpc.ModelExchangeServiceServicer):
    """Served on the peer port only; callers are pinned peers with their own access token."""

    def __init__(self, *, federation: Federation, exchange: ModelExchange) -> None:
        self.federation, self.exchange = federation, exchange

    @rpc
    async def PublishModel(self, request, context):
        peer = await check_peer(self.federation.state, caller(), PEER, context)
        return await asyncio.to_thread(self.exchange.accept, peer, request.artifact)

    @rpc
    async def GetModel(self, request, context):
        _aligned(await check_peer(self.federation.state, caller(), PEER, context))
        return pb.SignedModel(artifact=await asyncio.to_thread(self.exchange.own_artifact))


@dataclass
class ExchangeReport:
    """Per peer: what was published there, what was fetched from it, what failed."""

    published: dict[str, int] = field(default_factory=dict)  # peer -> version it now holds of ours
    fetched: dict[str, int] = field(default_factory=dict)  # peer -> version of its model kept here
    untrained: list[str] = field(default_factory=list)  # peers with no local model yet
    failures: dict[str, str] = field(default_factory=dict)


def _error_code(exc: grpc.RpcError) -> str:
    """The stable code in a status's ErrorDetail, or ""."""
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    detail = common_pb2.ErrorDetail()
    if status is None or not status.details or not status.details[0].Unpack(detail):
        return ""
    return detail.code


def _why(exc: Exception) -> str:
    if isinstance(exc, grpc.RpcError):
        return f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
    error = as_coopfed_error(exc)
    return error.message if error is not None else str(exc)


class ModelExchange:
    """This node's side of model federation: its own newest local model out, peers' models in."""

    def __init__(
        self, *, forecast: ForecastContext, federation: Federation, keys: KeyRing, node_id: str
    ) -> None:
        self.forecast, self.federation, self.keys, self.node_id = forecast, federation, keys, node_id

    def accept(self, peer: PeerRecord, data: bytes) -> pb.PublishModelResponse:
        # The forecaster (XGBoost, pandas, pvlib) loads here on first use, not when the node starts.
        from coopfed.node.forecast.models import accept_peer_artifact, trusted_keys

        pinned = trusted_keys(self.keys, self.federation, self.node_id, peer.peer_id)
        art, _ = accept_peer_artifact(self.forecast.store, pinned, peer, data)
        meta = art.metadata
        return pb.PublishModelResponse(coop_id=meta.coop_id, version=meta.version, sha256=meta.sha256)

    def own_artifact(self) -> bytes:
        latest = self.forecast.store.latest_model(self.node_id, "local")
        if latest is None:
            raise NotFound(f"{self.node_id} has trained no local model yet", code="forecast.no_model")
        return latest.path.read_bytes()

    async def _with_peer(self, peer: PeerRecord, report: ExchangeReport) -> None:
        own = await asyncio.to_thread(self.own_artifact)
        async with PeerClient(self.federation, self.keys, peer) as client:
            stub = pb_grpc.ModelExchangeServiceStub(client.channel)
            try:  # one access token per call: a peer refuses a token used before
                reply = await stub.PublishModel(
                    pb.PublishModelRequest(artifact=own),
                    metadata=await client.metadata(),
                    timeout=CALL_TIMEOUT,
                )
                report.published[peer.peer_id] = reply.version
            except grpc.RpcError as exc:
                if _error_code(exc) != STALE:
                    raise  # STALE: the peer holds this version already
            try:
                theirs = await stub.GetModel(
                    pb.GetModelRequest(), metadata=await client.metadata(), timeout=CALL_TIMEOUT
                )
            except grpc.RpcError as exc:
                if exc.code() is not grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
                    raise
                report.untrained.append(peer.peer_id)  # it has trained no model yet
                return
        try:
            kept = await asyncio.to_thread(self.accept, peer, theirs.artifact)
            report.fetched[peer.peer_id] = kept.version
        except FailedPrecondition as exc:
            if exc.code != STALE:
                raise  # else: not newer than the one held here

    async def exchange(self) -> ExchangeReport:
        """Publish this node's newest local model to every aligned pinned peer and fetch theirs."""
        report = ExchangeReport()
        peers = [r for p, r in self.federation.state.peers().items() if r.aligned and p != self.node_id]
        for peer in sorted(peers, key=lambda r: r.peer_id):
            try:
                await self._with_peer(peer, report)
            except Exception as exc:  # one peer's failure must not stop the others; bugs still raise
                if not isinstance(exc, grpc.RpcError | OSError) and as_coopfed_error(exc) is None:
                    raise
                report.failures[peer.peer_id] = _why(exc)
        return report
