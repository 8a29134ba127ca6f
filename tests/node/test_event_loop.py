"""No request blocks the node's event loop: the store, the key files and the forecast folder are
read in threads. asyncio's debug mode reports every callback that holds the loop longer than
`slow_callback_duration`; a typical mix of member calls, several at once, must cause none."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coopfed.node.client import bearer
from coopfed.node.runtime import init_node, open_node
from coopfed.node.server import NodeServer
from coopfed.node.settings import load_settings
from coopfed.v1 import common_pb2, forecast_pb2, forecast_pb2_grpc, member_pb2, member_pb2_grpc

from .conftest import POLICIES, QUIET

pytestmark = pytest.mark.integration

# Far above what a handler's own work takes on the loop (at most ~30 ms here, under debug mode),
# below a query waiting on a busy database or a file read on a slow disk.
THRESHOLD_S = 0.1
HH = 1800
START = 1_780_000_200 - 1_780_000_200 % HH


class SlowCallbacks(logging.Handler):
    """The callbacks asyncio's debug mode reports as holding the loop too long."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Executing"):
            self.seen.append(record.getMessage())


@pytest.fixture
def debug_node(tmp_path: Path) -> Iterator[tuple[str, SlowCallbacks]]:
    config = init_node(tmp_path / "n", node_id="coop-a", name="A", listen="127.0.0.1:0", policies=POLICIES)
    slow = SlowCallbacks()
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.addHandler(slow)
    with open_node(load_settings(config, environ=QUIET)) as node:
        loop = asyncio.new_event_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = THRESHOLD_S
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        server = NodeServer(node)
        port = asyncio.run_coroutine_threadsafe(server.start(), loop).result(60)
        try:
            yield f"127.0.0.1:{port}", slow
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(1), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
            asyncio_log.removeHandler(slow)


def member_session(address: str, n: int) -> None:
    """What a member's app does: join, read and set consent, upload, look back, export."""
    with grpc.insecure_channel(address) as channel:
        members = member_pb2_grpc.MemberServiceStub(channel)
        reply = members.Register(member_pb2.RegisterRequest(display_name=f"member {n}"))
        md = bearer(reply.token)
        members.GetMembership(member_pb2.GetMembershipRequest(), metadata=md)
        members.GetConsent(member_pb2.GetConsentRequest(), metadata=md)
        members.ListPersonas(member_pb2.ListPersonasRequest(), metadata=md)
        settings = member_pb2.ConsentSettings(level=common_pb2.CONSENT_LEVEL_GREEN)
        members.SetConsent(member_pb2.SetConsentRequest(settings=settings), metadata=md)
        batches = [
            member_pb2.ReadingBatch(
                dataset="demand",
                period_start_unix=[START + HH * (day * 48 + i) for i in range(48)],
                kwh=[0.25 + 0.01 * i for i in range(48)],
            )
            for day in range(7)
        ]
        members.UploadReadings(iter(batches), metadata=md)
        members.ListConsentHistory(member_pb2.ListConsentHistoryRequest(), metadata=md)
        members.ListDataAccess(member_pb2.ListDataAccessRequest(), metadata=md)
        list(members.ExportMyData(member_pb2.ExportRequest(), metadata=md))
        forecasts = forecast_pb2_grpc.ForecastServiceStub(channel)
        with pytest.raises(grpc.RpcError) as none_yet:
            forecasts.GetForecast(forecast_pb2.GetForecastRequest(), metadata=md)
        assert none_yet.value.code() == grpc.StatusCode.NOT_FOUND
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())


def test_a_typical_request_mix_never_blocks_the_event_loop(debug_node: tuple[str, SlowCallbacks]) -> None:
    address, slow = debug_node
    member_session(address, 0)  # first calls load modules and compile: not what is measured
    slow.seen.clear()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: member_session(address, n), range(1, 9)))
    assert slow.seen == []
