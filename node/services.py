"""gRPC servicers: each method converts the request, calls a domain function, converts back."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np

from coopfed.federation.grants import Grant
from coopfed.node import convert, members, meterdata
from coopfed.node.auth import Authenticator, caller
from coopfed.node.ballots import service as ballots
from coopfed.node.ballots.voting import Ballots
from coopfed.node.errors import FailedPrecondition, InvalidArgument
from coopfed.node.federation.aggregates import PeerReleases
from coopfed.node.federation.issuer import authenticate as authenticate_peer
from coopfed.node.federation.service import SERVICE_NAME as FEDERATION_SERVICE
from coopfed.node.federation.service import FederationService, PublicManifestService
from coopfed.node.forecast.exchange import ModelExchangeService
from coopfed.node.forecast.service import SERVICE_NAME as FORECAST_SERVICE
from coopfed.node.forecast.service import ForecastService
from coopfed.node.governance import service as governance
from coopfed.node.ledger import service as ledger
from coopfed.node.ledger.books import Books
from coopfed.node.paging import Page
from coopfed.node.ratelimit import RateLimit, peer_address
from coopfed.node.readings import Batch, validate_batch
from coopfed.node.release import pipeline
from coopfed.node.release.service import SERVICE_NAME as BENCHMARK_SERVICE
from coopfed.node.release.service import BenchmarkService, home_to_proto
from coopfed.node.rpc import rpc, still_wanted
from coopfed.node.runtime import Node
from coopfed.node.storage import Capacity
from coopfed.v1 import (
    ballot_pb2_grpc,
    benchmark_pb2_grpc,
    federation_pb2_grpc,
    forecast_pb2_grpc,
    ledger_pb2_grpc,
    member_pb2,
    member_pb2_grpc,
    meterdata_pb2,
    meterdata_pb2_grpc,
)

if TYPE_CHECKING:
    from coopfed.node.opendata.publish import Publisher

_CUT_OFF_NOTICE_S = 0.005


class MemberService(member_pb2_grpc.MemberServiceServicer):
    def __init__(self, node: Node) -> None:
        self.node = node
        conf = node.settings.node
        self.registrations = RateLimit("registrations", conf.registration_burst, conf.registrations_per_hour)

    @rpc
    async def Register(self, request, context):
        self.registrations.take(peer_address(context.peer()))
        reg = await asyncio.to_thread(
            members.register, self.node, request.display_name, request.meter_id, request.invitation_code
        )
        return member_pb2.RegisterResponse(member_id=reg.member_id, token=reg.token, status=reg.status)

    @rpc
    async def GetMembership(self, request, context):
        member = await asyncio.to_thread(self.node.store.get_member, caller().id)
        decided = member.admitted_at or member.refused_at
        return member_pb2.Membership(
            status=member.status,
            applied_at=convert.timestamp(member.created_at),
            decided_at=convert.timestamp(decided) if decided else None,
            refusal_reason=member.refusal_reason,
        )

    @rpc
    async def GetConsent(self, request, context):
        member_id = members.own_member(caller().id, request.member_id)
        member = await asyncio.to_thread(self.node.store.get_member, member_id)
        return convert.settings_to_proto(member.settings)

    @rpc
    async def SetConsent(self, request, context):
        change = convert.consent_change_from_proto(request, set(self.node.policy_data["consent"]["personas"]))
        record = await asyncio.to_thread(
            members.set_consent, self.node, caller().id, change, request.withdrawal_reason
        )
        return member_pb2.SetConsentResponse(record=convert.record_to_proto(record), receipt=record.receipt)

    @rpc
    async def ListConsentHistory(self, request, context):
        member_id = members.own_member(caller().id, request.member_id)
        page = Page(members.decision_log(self.node), request, caller=caller().id)
        (after,) = page.after or (0,)
        found = await asyncio.to_thread(
            self.node.store.consent_history, member_id, after=after, limit=page.fetch
        )
        history, token = page.cut(found, lambda r: (r.record_id,))
        return member_pb2.ListConsentHistoryResponse(
            records=[convert.record_to_proto(r) for r in history], next_page_token=token
        )

    @rpc
    async def ListPersonas(self, request, context):
        found, token = Page(members.decision_log(self.node), request).of_sorted(
            sorted(self.node.policy_data["consent"]["personas"].items()), lambda p: (p[0],)
        )
        return member_pb2.ListPersonasResponse(
            personas=[
                member_pb2.Persona(
                    name=name, title=p["title"], description=p["description"], version=p["version"]
                )
                for name, p in found
            ],
            next_page_token=token,
        )

    @rpc
    async def UploadReadings(self, request_iterator, context):
        wanted = still_wanted(context)
        batches = await self._receive(request_iterator)
        ended = time.monotonic()
        wanted()

        def before_commit() -> None:
            # A stream also ends when its caller goes away; gRPC reports that just after the end,
            # so the commit waits for a moment to have passed since (mostly it has), then stores
            # nothing if it did.
            time.sleep(max(0.0, ended + _CUT_OFF_NOTICE_S - time.monotonic()))
            wanted()

        inserted, replaced = await asyncio.to_thread(
            members.upload, self.node, caller().id, batches, before_commit
        )
        return member_pb2.UploadSummary(inserted=inserted, replaced=replaced)

    async def _receive(self, request_iterator: AsyncIterator[member_pb2.ReadingBatch]) -> list[Batch]:
        """Validate each message as it arrives; stop reading at the first bad one."""
        limits = self.node.settings.node
        batches: list[Batch] = []
        total = 0
        async for index, msg in _enumerate(request_iterator):
            if index >= limits.max_messages_per_upload:
                raise InvalidArgument(
                    f"batches[{index}]: more than {limits.max_messages_per_upload} messages in one "
                    "upload; send fewer, larger batches",
                    code="reading.too_many_messages",
                    field=f"batches[{index}]",
                )
            _within_size(index, msg, limits.max_message_bytes)
            periods = np.asarray(msg.period_start_unix, dtype=np.int64)
            kwh = np.asarray(msg.kwh, dtype=np.float64)
            total += len(periods)
            if total > limits.max_readings_per_upload:
                raise InvalidArgument(
                    f"batches[{index}]: more than {limits.max_readings_per_upload} readings in one "
                    "upload; split it into several uploads",
                    code="reading.too_many",
                    field=f"batches[{index}]",
                )
            batches.append(
                validate_batch(index, msg.dataset, periods, kwh, max_kwh=limits.max_kwh_per_half_hour)
            )
        return batches

    @rpc
    async def ExportMyData(self, request, context):
        member_id = members.own_member(caller().id, request.member_id)
        member, history, chunks = await asyncio.to_thread(members.export, self.node, member_id)
        profile = convert.profile_to_proto(member, history)
        homes = await asyncio.to_thread(self.node.store.homes, [member_id])
        profile.home.CopyFrom(home_to_proto(homes.get(member_id)))
        yield member_pb2.ExportChunk(profile=profile)
        while chunk := await asyncio.to_thread(next, chunks, None):
            dataset, periods, kwh = chunk
            yield member_pb2.ExportChunk(
                readings=member_pb2.ReadingBatch(
                    dataset=dataset, period_start_unix=periods.tolist(), kwh=kwh.tolist()
                )
            )

    @rpc
    async def EraseMe(self, request, context):
        erased = await asyncio.to_thread(members.erase, self.node, caller().id, request.confirm_member_id)
        return member_pb2.EraseResponse(readings_erased=erased)

    @rpc
    async def ListDataAccess(self, request, context):
        member_id = members.own_member(caller().id, request.member_id)
        page = Page(members.decision_log(self.node), request, caller=caller().id)
        return await asyncio.to_thread(
            governance.list_data_access, self.node.governance, self.node.policy, member_id, page
        )

    @rpc
    async def SignOutEverywhere(self, request, context):
        token = await asyncio.to_thread(self.node.credentials.sign_out_everywhere, caller().id)
        return member_pb2.SignOutEverywhereResponse(token=token)


class MeterDataService(meterdata_pb2_grpc.MeterDataServiceServicer):
    """The board's bulk feed of meter readings (`meterdata`): each message stored before the next."""

    def __init__(self, node: Node) -> None:
        self.node = node

    @rpc
    async def ImportReadings(self, request_iterator, context):
        limits = self.node.settings.node
        done = meterdata.Imported()
        async for index, msg in _enumerate(request_iterator):
            _within_size(index, msg, limits.max_message_bytes)
            periods = np.asarray(msg.period_start_unix, dtype=np.int64)
            kwh = np.asarray(msg.kwh, dtype=np.float64)
            checked = await asyncio.to_thread(
                meterdata.check, self.node, index, msg.dataset, list(msg.meter_ids), periods, kwh
            )
            done.add(await asyncio.to_thread(meterdata.store, self.node, checked))
        return meterdata_pb2.ImportSummary(**vars(done))


def _within_size(index: int, msg: Any, max_bytes: int) -> None:
    if msg.ByteSize() > max_bytes:
        raise InvalidArgument(
            f"batches[{index}]: {msg.ByteSize()} bytes is over the {max_bytes}-byte "
            "limit for one message; send smaller batches",
            code="reading.message_too_large",
            field=f"batches[{index}]",
        )


async def _enumerate(iterator: AsyncIterator) -> AsyncIterator:
    index = 0
    async for item in iterator:
        yield index, item
        index += 1


def add_services(server: grpc.aio.Server, node: Node) -> list[str]:
    """Register every coopfed servicer; returns the full service names (for health and reflection)."""
    member_pb2_grpc.add_MemberServiceServicer_to_server(MemberService(node), server)
    # Only the manifest: the rest of FederationService is on the mutual-TLS peer port.
    public = PublicManifestService(fed=node.federation, keys=node.keys, policy=node.policy)
    federation_pb2_grpc.add_FederationServiceServicer_to_server(public, server)
    forecast_pb2_grpc.add_ForecastServiceServicer_to_server(ForecastService(node), server)
    log = members.decision_log(node)
    ledger_pb2_grpc.add_LedgerServiceServicer_to_server(
        ledger.LedgerService(books=books_of(node), decision_log=log), server
    )
    benchmark_pb2_grpc.add_BenchmarkServiceServicer_to_server(BenchmarkService(node), server)
    ballot_pb2_grpc.add_BallotServiceServicer_to_server(
        ballots.BallotService(ballots=ballots_of(node), decision_log=log), server
    )
    governed = governance.add_services(server, node)
    meterdata_pb2_grpc.add_MeterDataServiceServicer_to_server(MeterDataService(node), server)
    member = member_pb2.DESCRIPTOR.services_by_name["MemberService"].full_name
    meters = meterdata_pb2.DESCRIPTOR.services_by_name["MeterDataService"].full_name
    services = [member, meters, FEDERATION_SERVICE, FORECAST_SERVICE, ledger.SERVICE_NAME, BENCHMARK_SERVICE]
    return [*services, ballots.SERVICE_NAME, *governed]


def books_of(node: Node) -> Books:
    """The node's ledger books, for its service, its portal and its commands."""
    return Books(
        store=node.store, governance=node.governance, policy=node.policy,
        decision_log=members.decision_log(node),
    )  # fmt: skip


def ballots_of(node: Node) -> Ballots:
    """The node's ballots, for its service, its portal and its benchmark."""
    if node.ballots is None or node.governance is None:
        raise FailedPrecondition("this node keeps no ballots", code="node.no_ballots")
    return Ballots(
        store=node.store, ballots=node.ballots, governance=node.governance,
        decision_log=members.decision_log(node), policy=node.policy,
        opa_binary=node.settings.policy.opa_binary,
    )  # fmt: skip


def publisher_of(node: Node) -> Publisher:
    """The node's open-data publications, for its schedule and its commands."""
    from coopfed.node.opendata.publish import Publisher  # the data-package stack loads only when used

    return Publisher(
        store=node.store, policy=node.policy, decision_log=members.decision_log(node),
        pipeline=NodePipeline(node),
    )  # fmt: skip


class NodePipeline:
    """The release pipeline's steps with one node's store, consent, policy and logs bound in,
    for features that take them as a collaborator (`coopfed.node.federation.aggregates.Pipeline`)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def plan(
        self,
        ask: pipeline.Ask,
        recipient: pipeline.Recipient,
        grant: Grant | None = None,
        *,
        contributes: pipeline.Contributes | None = None,
    ) -> pipeline.Release:
        return pipeline.plan(self.node, ask, recipient, grant, contributes=contributes)

    def record(self, release: pipeline.Release, path: str, question: Mapping[str, Any]) -> pipeline.Release:
        return pipeline.record(self.node, release, path, question)

    def cells(self, release: pipeline.Release, dataset: str) -> pipeline.Cells:
        return pipeline.cells(self.node, release, dataset)

    def log_access(self, release: pipeline.Release, released: Sequence[pipeline.Cells]) -> set[str]:
        return pipeline.log_access(self.node, release, released)

    def declared_capacity(self, profile_ids: Sequence[str], k: int) -> Capacity | None:
        return pipeline.declared_capacity(self.node, profile_ids, k)


def add_peer_services(server: grpc.aio.Server, node: Node) -> None:
    """Servicers of the mutual-TLS peer port: FederationService and model exchange."""
    fed = node.federation
    federation = FederationService(
        fed=fed, keys=node.keys, policy=node.policy, governance=node.governance,
        decision_log=node.decision_log, releases=PeerReleases(fed.state, NodePipeline(node)),
    )  # fmt: skip
    federation_pb2_grpc.add_FederationServiceServicer_to_server(federation, server)
    forecast_pb2_grpc.add_ModelExchangeServiceServicer_to_server(ModelExchangeService(node), server)


def authenticators(node: Node) -> dict[str, Authenticator]:
    """Who may call each service; a service missing here refuses every call (fail closed)."""
    peer = functools.partial(authenticate_peer, node.federation, node.keys)
    return {
        "/coopfed.v1.MemberService/": node.credentials.authenticate_member,
        "/coopfed.v1.MeterDataService/": node.credentials.authenticate_board,
        "/coopfed.v1.FederationService/": peer,
        "/coopfed.v1.ForecastService/": node.credentials.authenticate_member,
        "/coopfed.v1.BenchmarkService/": node.credentials.authenticate_member,
        "/coopfed.v1.ModelExchangeService/": peer,
        "/coopfed.v1.LedgerService/": node.credentials.authenticate_board_or_member,
        "/coopfed.v1.BallotService/": node.credentials.authenticate_board_or_member,
        **governance.authenticators(node),
    }
