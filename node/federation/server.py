"""The peer port: FederationService over mutual TLS whose roots are the pinned peers' certificates,
reloaded at each handshake (so a peer pinned while the node runs can connect), and the refresh task.

The peer port is the only place FederationService (beyond the public manifest) and
ModelExchangeService are served, and it is mutual TLS even where `[federation] plaintext` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from coopfed.federation.errors import KeyStoreError
from coopfed.federation.tls import is_loopback, pinned_roots
from coopfed.node.auth import Authenticator, AuthInterceptor
from coopfed.node.errors import FailedPrecondition
from coopfed.node.federation.context import Federation
from coopfed.node.federation.refresh import PeerRefresh, RefreshReport
from coopfed.node.federation.service import SERVICE_NAME
from coopfed.node.introspection import add_health
from coopfed.node.logs import RequestIdInterceptor
from coopfed.node.metrics import Metrics
from coopfed.node.operations import NO_PORT_SHARING, bind
from coopfed.node.policy.holder import PolicyHolder
from coopfed.node.rpc import MalformedRequestInterceptor, PolicyPinInterceptor

log = logging.getLogger(__name__)


class _PinnedRoots:
    """gRPC's certificate fetcher: a new configuration whenever the set of pinned peers changed.

    The node's own certificate is always among the roots, so the root set is never empty (which
    would mean 'trust anyone'): with no peer pinned, only the node itself could connect.
    """

    def __init__(self, fed: Federation) -> None:
        self.fed = fed
        self._current: tuple[bytes, ...] = ()

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        pems = tuple(sorted({self.fed.tls.cert_pem, *self.fed.state.pinned_certificates()}))
        self._current = pems
        return grpc.ssl_server_certificate_configuration(
            [(self.fed.tls.key_pem, self.fed.tls.cert_pem)], root_certificates=pinned_roots(pems)
        )

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        try:
            pems = tuple(sorted({self.fed.tls.cert_pem, *self.fed.state.pinned_certificates()}))
            return None if pems == self._current else self.configuration()
        except (FailedPrecondition, KeyStoreError) as exc:  # keep the last good roots
            log.error("cannot reload pinned peer certificates: %s", exc)
            return None


class PeerServer:
    """FederationService on the peer port, plus the task that refreshes peers' state."""

    def __init__(
        self,
        fed: Federation,
        *,
        metrics: Metrics,
        policy: PolicyHolder,
        authenticators: dict[str, Authenticator],
        add_services: Callable[[grpc.aio.Server], None],
        refresh: PeerRefresh,
    ) -> None:
        self.fed, self.metrics, self.policy, self.authenticators = fed, metrics, policy, authenticators
        self.add_services, self.refresh = add_services, refresh  # FederationService and model exchange
        self.listeners: list[Callable[[RefreshReport], None]] = []  # told after every refresh round
        self.port = 0
        self._refresh: asyncio.Task[None] | None = None

    async def start(self, max_receive: int) -> int:
        self.server = grpc.aio.server(
            interceptors=[
                MalformedRequestInterceptor(),
                RequestIdInterceptor(),
                self.metrics.interceptor(),
                AuthInterceptor(self.authenticators),
                PolicyPinInterceptor(self.policy),  # as on the public port
            ],
            options=[("grpc.max_receive_message_length", max_receive), NO_PORT_SHARING],
        )
        self.add_services(self.server)
        self.health = add_health(self.server)
        self.port = self._bind()
        await self.server.start()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.fed.ports["peer"] = self.port
        self._refresh = asyncio.create_task(self.refresh.run(self._notify), name="federation-refresh")
        log.info("node %s serving peers on port %d", self.fed.node_id, self.port)
        return self.port

    def _bind(self) -> int:
        # Always mutual TLS, whatever [federation] plaintext says: peers are known by their
        # pinned certificates, and without TLS there is nothing to pin.
        listen = self.fed.conf.listen
        if self.fed.conf.plaintext and not is_loopback(listen):
            raise FailedPrecondition(
                f"[federation] plaintext is allowed only on loopback, not {listen}",
                code="config.plaintext",
            )
        roots = _PinnedRoots(self.fed)
        fetch: Any = roots  # it may return None ("no change"), which grpc's stub leaves out
        creds = grpc.dynamic_ssl_server_credentials(
            roots.configuration(), fetch, require_client_authentication=True
        )
        return bind(self.server, listen, "federation", creds)

    def _notify(self, report: RefreshReport) -> None:
        for listener in list(self.listeners):
            listener(report)

    async def stop(self, grace: float) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
