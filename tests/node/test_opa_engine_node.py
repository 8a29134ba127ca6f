"""A node whose policies run on a real OPA sidecar answers members exactly as the embedded engine does."""

from __future__ import annotations

import grpc
import jwt
import pytest

from coopfed.v1 import common_pb2, member_pb2, member_pb2_grpc

from .conftest import Member, running_node

AMBER = member_pb2.ConsentSettings(
    level=common_pb2.CONSENT_LEVEL_AMBER,
    choices=[common_pb2.DatasetChoice(dataset="demand", allowed_flows=[common_pb2.FLOW_COOP_TO_COOP])],
)


def receipt_services(folder, env) -> tuple[str, list]:
    with running_node(folder, env=env) as (node, address), grpc.insecure_channel(address) as channel:
        stub = member_pb2_grpc.MemberServiceStub(channel)
        member = Member(stub, "Ada")
        reply = stub.SetConsent(member_pb2.SetConsentRequest(settings=AMBER), metadata=member.md)
        with node.policy.pinned() as engine:
            kind = type(engine).__name__
        return kind, jwt.decode(reply.receipt, options={"verify_signature": False})["receipt"]["services"]


@pytest.mark.integration
def test_opa_sidecar_node_gives_the_embedded_answers(tmp_path, opa_binary):
    sidecar = {"COOPFED_POLICY__ENGINE": "opa", "COOPFED_POLICY__OPA_BINARY": opa_binary}
    opa_kind, on_opa = receipt_services(tmp_path / "opa", sidecar)
    embedded_kind, embedded = receipt_services(tmp_path / "embedded", {"COOPFED_POLICY__ENGINE": "embedded"})
    assert (opa_kind, embedded_kind) == ("OpaEngine", "EmbeddedEngine")
    assert on_opa == embedded
    assert any(p["thirdPartyDisclosure"] for s in on_opa for p in s["purposes"])
