"""gRPC servicers: each method converts the request, calls a domain function, converts back."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np

from coopfed.node import convert, meterdata
from coopfed.node.auth import Authenticator, caller
from coopfed.node.ballots import service as ballots
from coopfed.node.ballots.voting import Ballots
from coopfed.node.credentials import Credentials
from coopfed.node.decisionlog import DecisionLog
from coopfed.node.errors import FailedPrecondition, InvalidArgument
from coopfed.node.federation.aggregates import PeerReleases
from coopfed.node.federation.issuer import authenticate as authenticate_peer
from coopfed.node.federation.service import SERVICE_NAME as FEDERATION_SERVICE
from coopfed.node.federation.service import FederationService, PublicManifestService
from coopfed.node.forecast.exchange import ModelExchange, ModelExchangeService
from coopfed.node.forecast.schedule import ForecastSchedule
from coopfed.node.forecast.service import SERVICE_NAME as FORECAST_SERVICE
from coopfed.node.forecast.service import ForecastService
from coopfed.node.governance import service as governance
from coopfed.node.ledger import service as ledger
from coopfed.node.ledger.books import Books
from coopfed.node.members import Members, own_member
from coopfed.node.paging import Page
from coopfed.node.policy.holder import PolicyHolder
from coopfed.node.ratelimit import RateLimit, peer_address
from coopfed.node.readings import Batch, validate_batch
from coopfed.node.receipts import Receipts
from coopfed.node.release.benchmark import Benchmarks
from coopfed.node.release.service import SERVICE_NAME as BENCHMARK_SERVICE
from coopfed.node.release.service import BenchmarkService, home_to_proto
from coopfed.node.rpc import rpc, still_wanted
from coopfed.node.runtime import Node
from coopfed.node.settings import NodeSection
from coopfed.node.storage import Store
from coopfed.node.storage.governance import GovernanceStore
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
    from coopfed.node.forecast.forecasting import Forecasting
    from coopfed.node.opendata.publish import Publisher

_CUT_OFF_NOTICE_S = 0.005


class MemberService(member_pb2_grpc.MemberServiceServicer):
    def __init__(
        self,
        *,
        members: Members,
        store: Store,
        policy: PolicyHolder,
        decision_log: DecisionLog,
        governance: GovernanceStore,
        credentials: Credentials,
        settings: NodeSection,
    ) -> None:
        self.members, self.store, self.policy, self.decision_log = members, store, policy, decision_log
        self.governance, self.credentials, self.limits = governance, credentials, settings
        self.registrations = RateLimit(
            "registrations", settings.registration_burst, settings.registrations_per_hour
        )

    @rpc
    async def Register(self, request, context):
        self.registrations.take(peer_address(context.peer()))
        reg = await asyncio.to_thread(
            self.members.register, request.display_name, request.meter_id, request.invitation_code
        )
        return member_pb2.RegisterResponse(member_id=reg.member_id, token=reg.token, status=reg.status)

    @rpc
    async def GetMembership(self, request, context):
        member = await asyncio.to_thread(self.store.get_member, caller().id)
        decided = member.admitted_at or member.refused_at
        return member_pb2.Membership(
            status=member.status,
            applied_at=convert.timestamp(member.created_at),
            decided_at=convert.timestamp(decided) if decided else None,
            refusal_reason=member.refusal_reason,
        )

    @rpc
    async def GetConsent(self, request, context):
        member_id = own_member(caller().id, request.member_id)
        member = await asyncio.to_thread(self.store.get_member, member_id)
        return convert.settings_to_proto(member.settings)

    @rpc
    async def SetConsent(self, request, context):
        change = convert.consent_change_from_proto(request, set(self.policy.personas))
        record = await asyncio.to_thread(
            self.members.set_consent, caller().id, change, request.withdrawal_reason
        )
        return member_pb2.SetConsentResponse(record=convert.record_to_proto(record), receipt=record.receipt)

    @rpc
    async def ListConsentHistory(self, request, context):
        member_id = own_member(caller().id, request.member_id)
        page = Page(self.decision_log, request, caller=caller().id)
        (after,) = page.after or (0,)
        found = await asyncio.to_thread(self.store.consent_history, member_id, after=after, limit=page.fetch)
        history, token = page.cut(found, lambda r: (r.record_id,))
        return member_pb2.ListConsentHistoryResponse(
            records=[convert.record_to_proto(r) for r in history], next_page_token=token
        )

    @rpc
    async def ListPersonas(self, request, context):
        found, token = Page(self.decision_log, request).of_sorted(
            sorted(self.policy.personas.items()), lambda p: (p[0],)
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

        inserted, replaced = await asyncio.to_thread(self.members.upload, caller().id, batches, before_commit)
        return member_pb2.UploadSummary(inserted=inserted, replaced=replaced)

    async def _receive(self, request_iterator: AsyncIterator[member_pb2.ReadingBatch]) -> list[Batch]:
        """Validate each message as it arrives; stop reading at the first bad one."""
        limits = self.limits
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
        member_id = own_member(caller().id, request.member_id)
        member, history, chunks = await asyncio.to_thread(self.members.export, member_id)
        profile = convert.profile_to_proto(member, history)
        homes = await asyncio.to_thread(self.store.homes, [member_id])
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
        erased = await asyncio.to_thread(self.members.erase, caller().id, request.confirm_member_id)
        return member_pb2.EraseResponse(readings_erased=erased)

    @rpc
    async def ListDataAccess(self, request, context):
        member_id = own_member(caller().id, request.member_id)
        page = Page(self.decision_log, request, caller=caller().id)
        return await asyncio.to_thread(
            governance.list_data_access, self.governance, self.policy, member_id, page
        )

    @rpc
    async def SignOutEverywhere(self, request, context):
        token = await asyncio.to_thread(self.credentials.sign_out_everywhere, caller().id)
        return member_pb2.SignOutEverywhereResponse(token=token)


class MeterDataService(meterdata_pb2_grpc.MeterDataServiceServicer):
    """The board's bulk feed of meter readings (`meterdata`): each message stored before the next."""

    def __init__(self, *, feed: meterdata.MeterFeed, max_message_bytes: int) -> None:
        self.feed, self.max_message_bytes = feed, max_message_bytes

    @rpc
    async def ImportReadings(self, request_iterator, context):
        done = meterdata.Imported()
        async for index, msg in _enumerate(request_iterator):
            _within_size(index, msg, self.max_message_bytes)
            periods = np.asarray(msg.period_start_unix, dtype=np.int64)
            kwh = np.asarray(msg.kwh, dtype=np.float64)
            checked = await asyncio.to_thread(
                meterdata.check, self.feed, index, msg.dataset, msg.meter_ids, periods, kwh
            )
            done.add(await asyncio.to_thread(meterdata.store, self.feed, checked))
        if done.inserted:
            await asyncio.to_thread(self.feed.store.refresh_statistics)
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
    member = MemberService(
        members=members_of(node), store=node.store, policy=node.policy, decision_log=node.decision_log,
        governance=node.governance, credentials=node.credentials, settings=node.settings.node,
    )  # fmt: skip
    member_pb2_grpc.add_MemberServiceServicer_to_server(member, server)
    # Only the manifest: the rest of FederationService is on the mutual-TLS peer port.
    public = PublicManifestService(fed=node.federation, keys=node.keys, policy=node.policy)
    federation_pb2_grpc.add_FederationServiceServicer_to_server(public, server)
    forecast = ForecastService(store=node.store, forecast=node.forecast, tz=node.settings.place.tz)
    forecast_pb2_grpc.add_ForecastServiceServicer_to_server(forecast, server)
    log = node.decision_log
    ledger_pb2_grpc.add_LedgerServiceServicer_to_server(
        ledger.LedgerService(books=books_of(node), decision_log=log), server
    )
    benchmark_pb2_grpc.add_BenchmarkServiceServicer_to_server(
        BenchmarkService(store=node.store, benchmarks=benchmarks_of(node)), server
    )
    ballot_pb2_grpc.add_BallotServiceServicer_to_server(
        ballots.BallotService(ballots=ballots_of(node), decision_log=log), server
    )
    governed = governance.add_services(server, node)
    feed = meterdata.MeterFeed(
        node.store, node.settings.base_dir, node.settings.node.max_kwh_per_half_hour, node.metrics
    )
    meterdata_pb2_grpc.add_MeterDataServiceServicer_to_server(
        MeterDataService(feed=feed, max_message_bytes=node.settings.node.max_message_bytes), server
    )
    member_name = member_pb2.DESCRIPTOR.services_by_name["MemberService"].full_name
    meters = meterdata_pb2.DESCRIPTOR.services_by_name["MeterDataService"].full_name
    services = [member_name, meters, FEDERATION_SERVICE, FORECAST_SERVICE, ledger.SERVICE_NAME]
    services.append(BENCHMARK_SERVICE)
    return [*services, ballots.SERVICE_NAME, *governed]


def members_of(node: Node) -> Members:
    """What members do with their own data, for their service and their portal pages."""
    receipts = Receipts(node.policy, node.consent, node.decision_log, node.keys, node.node_id)
    return Members(
        store=node.store, policy=node.policy, decision_log=node.decision_log, credentials=node.credentials,
        receipts=receipts, metrics=node.metrics, base_dir=node.settings.base_dir,
    )  # fmt: skip


def books_of(node: Node) -> Books:
    """The node's ledger books, for its service, its portal and its commands."""
    return Books(
        store=node.store, governance=node.governance, policy=node.policy,
        decision_log=node.decision_log,
    )  # fmt: skip


def benchmarks_of(node: Node) -> Benchmarks:
    """Members' comparisons with similar homes, for their service and their portal page."""
    return Benchmarks(
        store=node.store, governance=node.governance, policy=node.policy, pipeline=node.pipeline,
        tz=node.settings.place.tz,
    )  # fmt: skip


def ballots_of(node: Node) -> Ballots:
    """The node's ballots, for its service, its portal and its benchmark."""
    if node.ballots is None or node.governance is None:
        raise FailedPrecondition("this node keeps no ballots", code="node.no_ballots")
    return Ballots(
        store=node.store, ballots=node.ballots, governance=node.governance,
        decision_log=node.decision_log, policy=node.policy,
        opa_binary=node.settings.policy.opa_binary,
    )  # fmt: skip


def publisher_of(node: Node) -> Publisher:
    """The node's open-data publications, for its schedule and its commands."""
    from coopfed.node.opendata.publish import Publisher  # the data-package stack loads only when used

    return Publisher(
        store=node.store, policy=node.policy, decision_log=node.decision_log,
        pipeline=node.pipeline,
    )  # fmt: skip


def add_peer_services(server: grpc.aio.Server, node: Node) -> None:
    """Servicers of the mutual-TLS peer port: FederationService and model exchange."""
    fed = node.federation
    federation = FederationService(
        fed=fed, keys=node.keys, policy=node.policy, governance=node.governance,
        decision_log=node.decision_log, releases=PeerReleases(fed.state, node.pipeline),
    )  # fmt: skip
    federation_pb2_grpc.add_FederationServiceServicer_to_server(federation, server)
    exchange = ModelExchangeService(federation=node.federation, exchange=model_exchange_of(node))
    forecast_pb2_grpc.add_ModelExchangeServiceServicer_to_server(exchange, server)


def model_exchange_of(node: Node) -> ModelExchange:
    """This node's side of model federation, for the peer port, its schedule and its commands."""
    return ModelExchange(
        forecast=node.forecast, federation=node.federation, keys=node.keys, node_id=node.node_id
    )


def forecasting_of(node: Node) -> Forecasting:
    """The co-op's forecasting: its aggregates, models and forecasts, for its schedule and commands."""
    # The forecaster's stack (pandas, XGBoost) loads only when forecasting is used.
    from coopfed.node.forecast.data import ForecastData
    from coopfed.node.forecast.forecasting import Forecasting
    from coopfed.node.forecast.models import Models

    data = ForecastData(
        store=node.store, policy=node.policy, consent=node.consent, pipeline=node.pipeline,
        federation=node.federation, keys=node.keys, node_id=node.node_id, place=node.settings.place,
    )  # fmt: skip
    models = Models(
        data=data, forecast=node.forecast, keys=node.keys, federation=node.federation,
        decision_log=node.decision_log, policy=node.policy, conf=node.settings.forecast,
        node_id=node.node_id,
    )  # fmt: skip
    return Forecasting(data=data, models=models, forecast=node.forecast, node_id=node.node_id)


def forecast_schedule_of(node: Node, clock: Callable[[], float] = time.time) -> ForecastSchedule:
    """The node's daily training and forecast, for its server (`clock`: tests stand at any instant)."""
    return ForecastSchedule(
        settings=node.settings, forecast=node.forecast, forecasting=functools.partial(forecasting_of, node),
        exchange=model_exchange_of(node), clock=clock,
    )  # fmt: skip


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
