"""Fixtures: a real node serving gRPC on an ephemeral loopback port, and member clients."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from coopfed.node.client import bearer
from coopfed.node.runtime import Node, init_node, open_node
from coopfed.node.server import NodeServer
from coopfed.node.settings import load_settings
from coopfed.v1 import member_pb2, member_pb2_grpc

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@contextlib.contextmanager
def running_node(
    folder: Path, node_id: str = "coop-a", env: dict[str, str] | None = None
) -> Iterator[tuple[Node, str]]:
    """A node serving on 127.0.0.1:<ephemeral> from its own event loop thread."""
    config = init_node(
        folder, node_id=node_id, name=f"{node_id} co-op", listen="127.0.0.1:0", policies=POLICIES
    )
    with serving(config, env) as running:
        yield running


# A test node forecasts on its own only where the test asks (a run spanning 12:00 stays quiet).
QUIET = {"COOPFED_FORECAST_SCHEDULE__ENABLED": "false"}


@contextlib.contextmanager
def serving(config: Path, env: dict[str, str] | None = None) -> Iterator[tuple[Node, str]]:
    """The node of an existing folder, serving from its own event loop thread as `node serve` does."""
    with open_node(load_settings(config, environ={**QUIET, **(env or {})})) as node:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        server = NodeServer(node)
        port = asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
        try:
            yield node, f"127.0.0.1:{port}"
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(1), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Node, str]]:
    with running_node(tmp_path / "node") as running:
        yield running


@pytest.fixture
def stub(node: tuple[Node, str]) -> Iterator[member_pb2_grpc.MemberServiceStub]:
    with grpc.insecure_channel(node[1]) as channel:
        yield member_pb2_grpc.MemberServiceStub(channel)


class Member:
    """A registered member and the metadata that authenticates their calls."""

    def __init__(self, stub: member_pb2_grpc.MemberServiceStub, name: str) -> None:
        reply = stub.Register(member_pb2.RegisterRequest(display_name=name))
        self.id = reply.member_id
        self.token = reply.token
        self.md = bearer(reply.token)


@pytest.fixture
def member(stub: member_pb2_grpc.MemberServiceStub) -> Member:
    return Member(stub, "Ada")
