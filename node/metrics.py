"""The node's Prometheus metrics: calls and latency per RPC, readings, decisions, releases, revision."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import InfoMetricFamily
from prometheus_client.registry import Collector

from coopfed.node.errors import FailedPrecondition
from coopfed.node.rpc import around_calls, call_code

log = logging.getLogger(__name__)
_VERDICTS = ("allowed", "aligned", "verified", "revoked")


def outcome(result: Any) -> str:
    """A decision's outcome for a label: its `outcome` (approve, reject, refer), else its verdict
    (allowed / not_allowed, aligned, verified, revoked), else "recorded" (releases, grants...)."""
    if isinstance(result, Mapping):
        if isinstance(result.get("outcome"), str):
            return str(result["outcome"])
        for verdict in _VERDICTS:
            if isinstance(result.get(verdict), bool):
                return verdict if result[verdict] else f"not_{verdict}"
    return "recorded"


class _Revision(Collector):
    """The policy revision the node runs now, read at each scrape (a reload shows at once)."""

    def __init__(self, revision: Callable[[], str]) -> None:
        self._revision = revision

    def collect(self) -> Iterator[InfoMetricFamily]:
        info = InfoMetricFamily("coopfed_policy", "The policy revision this node decides by")
        info.add_metric([], {"revision": self._revision()})
        yield info


@dataclass
class Endpoint:
    """A running /metrics HTTP endpoint; `port` is the bound port (useful with port 0)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class Metrics:
    """One node's metrics, in a registry of its own (several nodes may share a process)."""

    def __init__(self, revision: Callable[[], str] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.endpoint: Endpoint | None = None
        r = self.registry
        self.calls = Counter(
            "coopfed_rpc_calls", "gRPC calls by method and status", ["method", "code"], registry=r
        )
        self.latency = Histogram(
            "coopfed_rpc_duration_seconds",
            "gRPC call duration by method and status",
            ["method", "code"],
            registry=r,
        )
        self.readings = Counter(
            "coopfed_readings_stored", "Meter readings stored (new or replaced)", registry=r
        )
        self.decisions = Counter(
            "coopfed_decisions",
            "Policy decisions logged, by policy and outcome",
            ["policy", "outcome"],
            registry=r,
        )
        self.releases = Counter(
            "coopfed_releases", "Releases of members' data, by flow", ["flow"], registry=r
        )
        self.background_failures = Counter(
            "coopfed_background_failures",
            "Background tasks (schedules, policy reload, admin socket) that failed and stopped, by task",
            ["task"],
            registry=r,
        )
        if revision is not None:
            r.register(_Revision(revision))

    def logged(self, events: list[dict[str, Any]]) -> None:
        """Count decisions once they are durably in the decision log."""
        for event in events:
            self.decisions.labels(event["path"], outcome(event["result"])).inc()

    def released(self, flow: str) -> None:
        self.releases.labels(flow).inc()

    def background_failed(self, task: str) -> None:
        self.background_failures.labels(task).inc()

    def stored(self, readings: int) -> None:
        self.readings.inc(readings)

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        return _CallMetrics(self)

    def serve(self, listen: str) -> Endpoint:
        """Serve /metrics over HTTP on host:port in a thread of its own, until `stop()`."""
        host, _, port = listen.rpartition(":")
        try:
            server, thread = start_http_server(int(port), host.strip("[]"), registry=self.registry)
        except (OSError, ValueError) as exc:
            raise FailedPrecondition(
                f"cannot serve metrics on {listen}: {exc}", code="config.metrics"
            ) from exc
        self.endpoint = Endpoint(server, thread)
        return self.endpoint

    def stop(self) -> None:
        if self.endpoint is not None:
            self.endpoint.stop()
            self.endpoint = None


class _CallMetrics(grpc.aio.ServerInterceptor):
    """Counts and times every call of a known method by its status, and logs one line for it."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # an unknown method: not counted, so a caller cannot invent labels
        method = handler_call_details.method

        @contextlib.asynccontextmanager
        async def observed(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            started = time.perf_counter()
            code = grpc.StatusCode.UNKNOWN
            try:
                yield
                code = call_code(context)
            except BaseException as exc:
                code = call_code(context, exc)
                raise
            finally:
                elapsed = time.perf_counter() - started
                self._metrics.calls.labels(method, code.name).inc()
                self._metrics.latency.labels(method, code.name).observe(elapsed)
                log.info("%s %s %.1f ms", method, code.name, elapsed * 1000)

        return around_calls(handler, observed)
