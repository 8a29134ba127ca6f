"""The node's gRPC server: services, health, reflection, authentication, graceful shutdown."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2

from coopfed.federation.tls import is_loopback
from coopfed.node.admin import AdminService, Ports, start_admin, stop_admin
from coopfed.node.auth import AuthInterceptor
from coopfed.node.background import Background
from coopfed.node.errors import FailedPrecondition
from coopfed.node.federation.refresh import PeerRefresh
from coopfed.node.federation.server import PeerServer
from coopfed.node.introspection import HEALTH_SERVICE, add_health, add_reflection
from coopfed.node.logs import RequestIdInterceptor
from coopfed.node.operations import NO_PORT_SHARING, FolderLock, bind
from coopfed.node.portal.parts import PortalParts
from coopfed.node.rpc import MalformedRequestInterceptor, PolicyPinInterceptor
from coopfed.node.runtime import Node
from coopfed.node.services import (
    add_peer_services,
    add_services,
    authenticators,
    ballots_of,
    benchmarks_of,
    books_of,
    forecast_schedule_of,
    members_of,
    publisher_of,
)

if TYPE_CHECKING:
    from coopfed.node.forecast.schedule import ForecastSchedule
    from coopfed.node.portal.server import PortalServer

log = logging.getLogger(__name__)
SHUTDOWN_GRACE = 10.0


class NodeServer:
    """A started server; `port` is the bound port (useful with port 0)."""

    def __init__(self, node: Node, clock: Callable[[], float] = time.time) -> None:
        self.node = node
        self.clock = clock  # the clock the schedules run on (tests stand it at any instant)
        self.port = 0
        self.peers: PeerServer | None = None  # the mutual-TLS port for peer co-ops, if configured
        self.portal: PortalServer | None = None  # the members' web portal, where [portal] listen says
        self.lock = FolderLock(node.settings.base_dir)  # one server per node folder
        self.background = Background(node.metrics.background_failed)  # the tasks below, in one TaskGroup
        self.publisher: asyncio.Task[None] | None = None  # scheduled open data, where [open_data] says
        self.schedule: ForecastSchedule | None = (
            None  # forecasts and training, where [forecast_schedule] says
        )
        self.forecaster: asyncio.Task[None] | None = None
        self.admin: grpc.aio.Server | None = None  # the operator's unix socket in the node's folder

    async def start(self) -> int:
        """Take the folder's lock, then create the server on the running event loop, bind and start it."""
        self.lock.acquire()
        try:
            await self._start()
        except BaseException:
            self.lock.release()
            raise
        self.lock.note(port=self.port, peer_port=self.peers.port if self.peers else None)
        return self.port

    async def _start(self) -> None:
        settings = self.node.settings
        # gRPC's own limit sits above ours so that the node answers an oversized batch itself.
        self.server = grpc.aio.server(
            interceptors=[
                MalformedRequestInterceptor(),  # bytes that do not parse are refused before all else
                RequestIdInterceptor(),  # every line logged for a call carries its id
                self.node.metrics.interceptor(),
                AuthInterceptor(authenticators(self.node)),
                PolicyPinInterceptor(self.node.policy),
            ],
            options=[
                ("grpc.max_receive_message_length", 2 * settings.node.max_message_bytes + 1024),
                # Each stream may have one largest message in flight, however fast its sender:
                # BDP probing grows the window until a bulk feed's streams hold tens of MB here.
                ("grpc.http2.bdp_probe", 0),
                ("grpc.http2.lookahead_bytes", settings.node.max_message_bytes),
                NO_PORT_SHARING,
            ],
        )
        self.health = add_health(self.server)
        names = add_services(self.server, self.node)
        names += [HEALTH_SERVICE, *add_reflection(self.server, [*names, HEALTH_SERVICE])]
        if settings.node.plaintext and not is_loopback(settings.node.listen):
            raise FailedPrecondition(
                f"plaintext is allowed only on loopback, not {settings.node.listen}; configure [tls]",
                code="config.plaintext",
            )
        creds = None if settings.node.plaintext else self._tls_credentials()
        self.port = bind(self.server, settings.node.listen, "node", creds)
        await self.server.start()
        for name in ["", *names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("node %s serving on port %d", self.node.node_id, self.port)
        try:
            await self.background.start()
            self._start_metrics()
            if self.node.policy.reloader is not None:
                self.background.spawn("policy reload", self.node.policy.reloader.run())
            self._start_publisher()
            self._start_forecaster()
            await self._start_peers()
            await self._start_portal()
            ports = Ports(self.port, self.peers.port if self.peers else 0)
            admin = AdminService(
                policy=self.node.policy, keys=self.node.keys, node_id=self.node.node_id, ports=ports
            )
            self.admin = await start_admin(settings.base_dir, admin)
            self.background.spawn("admin socket", self._serve_admin(self.admin))
        except BaseException:
            await self.background.stop()
            if self.portal is not None:
                await self.portal.stop()
            if self.peers is not None:
                await self.peers.stop(0)
            await self.server.stop(0)
            self.node.metrics.stop()
            raise

    async def _start_peers(self) -> None:
        node, fed = self.node, self.node.federation
        fed.ports["public"] = self.port
        if fed.enabled:
            self.peers = PeerServer(
                fed, metrics=node.metrics, policy=node.policy, authenticators=authenticators(node),
                add_services=lambda server: add_peer_services(server, node),
                refresh=PeerRefresh(fed, node.keys, node.policy, node.governance),
            )  # fmt: skip
            await self.peers.start(2 * node.settings.node.max_message_bytes + 1024)

    async def _start_portal(self) -> None:
        if self.node.settings.portal.listen:
            from coopfed.node.portal.server import PortalServer  # the web stack loads only when used

            self.portal = PortalServer(portal_parts(self.node))
            await self.portal.start()

    def _start_publisher(self) -> None:
        if self.node.settings.open_data.every:
            from coopfed.node.opendata.schedule import Schedule  # the data-package stack loads only when used

            node = self.node
            schedule = Schedule(  # refuses an unknown [open_data] every before serving
                settings=node.settings, store=node.store, publish=publisher_of(node).publish
            )
            self.publisher = self.background.spawn("open data schedule", schedule.run())

    def _start_forecaster(self) -> None:
        if self.node.settings.forecast_schedule.enabled:
            self.schedule = forecast_schedule_of(self.node, self.clock)  # refuses a wrong forecast_at first
            self.forecaster = self.background.spawn("forecast schedule", self.schedule.run())

    async def _serve_admin(self, server: grpc.aio.Server) -> None:
        try:
            await server.wait_for_termination()
        finally:  # stopped with the other background work
            await stop_admin(server, self.node.settings.base_dir)

    def _start_metrics(self) -> None:
        conf = self.node.settings.metrics
        if not conf.listen:
            return
        if not (conf.allow_remote or is_loopback(conf.listen)):
            raise FailedPrecondition(
                f"metrics are served on loopback only, not {conf.listen}; see [metrics] allow_remote",
                code="config.metrics",
            )
        port = self.node.metrics.serve(conf.listen).port
        log.info("metrics on http://%s:%d/metrics", conf.listen.rsplit(":", 1)[0], port)

    def _tls_credentials(self) -> grpc.ServerCredentials:
        settings = self.node.settings
        key = settings.path(settings.tls.key).read_bytes()
        cert = settings.path(settings.tls.cert).read_bytes()
        return grpc.ssl_server_credentials([(key, cert)])

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Refuse new calls, let calls in flight finish (and commit), then stop."""
        await self.health.enter_graceful_shutdown()
        await self.background.stop()  # the admin socket and the schedules, each awaited
        if self.portal is not None:
            await self.portal.stop()
        if self.peers is not None:
            await self.peers.stop(grace)
        await self.server.stop(grace)
        await asyncio.to_thread(self.node.metrics.stop)
        self.lock.release()


def portal_parts(node: Node) -> PortalParts:
    """The portal's collaborators, the features its pages call bound to this node."""
    from coopfed.node.governance import admission
    from coopfed.node.governance.service import parts as governance_parts
    from coopfed.node.ledger.run import decide_terms

    assert node.governance is not None  # open_node makes both
    assert node.ballots is not None
    assert node.decision_log is not None
    requests = governance_parts(node).requests
    ballots = ballots_of(node)
    member = members_of(node)
    return PortalParts(
        settings=node.settings, store=node.store, policy=node.policy, governance=node.governance,
        ballots=node.ballots, ledger=books_of(node).ledger, forecast=node.forecast,
        register=lambda name, code: member.register(name, invitation_code=code),
        set_consent=member.set_consent, export=member.export, erase=member.erase,
        review=requests.review, revoke=requests.revoke,
        admit=functools.partial(admission.decide, node.governance, node.decision_log, node.policy),
        ballot=ballots.get, tally=ballots.tally, vote=ballots.vote, sign=ballots.sign,
        terms=lambda start, end: decide_terms(node.policy, start, end)[0],
        benchmark=benchmarks_of(node).compare,
    )  # fmt: skip
