"""The public port: TLS with the node's own certificate, plaintext only on loopback."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from coopfed.node.errors import FailedPrecondition
from coopfed.node.runtime import init_node, open_node
from coopfed.node.server import NodeServer
from coopfed.node.settings import load_settings
from coopfed.v1 import member_pb2, member_pb2_grpc

from .conftest import POLICIES, running_node


def test_tls_port_serves_clients_that_trust_the_node_certificate(tmp_path):
    with running_node(tmp_path / "n", env={"COOPFED_NODE__PLAINTEXT": "false"}) as (node, address):
        cert = node.settings.path(node.settings.tls.cert).read_bytes()
        creds = grpc.ssl_channel_credentials(root_certificates=cert)
        with grpc.secure_channel(address, creds) as channel:
            reply = member_pb2_grpc.MemberServiceStub(channel).Register(
                member_pb2.RegisterRequest(display_name="Ada"), timeout=10
            )
        assert reply.member_id.startswith("m-")
        with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as caught:
            member_pb2_grpc.MemberServiceStub(channel).Register(
                member_pb2.RegisterRequest(display_name="Eve"), timeout=5
            )
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_plaintext_off_loopback_is_refused(tmp_path):
    config = init_node(tmp_path, node_id="open", name="open", listen="0.0.0.0:0", policies=POLICIES)
    with open_node(load_settings(config, environ={})) as node, pytest.raises(FailedPrecondition):
        asyncio.run(NodeServer(node).start())
