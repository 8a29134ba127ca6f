"""What an operator and generic tools see of a running node: logs, metrics, health, reflection."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from prometheus_client.parser import text_string_to_metric_families

from coopfed.node.client import bearer
from coopfed.node.errors import FailedPrecondition, InvalidArgument
from coopfed.node.logs import REDACTED, configure_logging, redact
from coopfed.node.runtime import init_node, open_node
from coopfed.node.server import NodeServer
from coopfed.node.settings import load_settings
from coopfed.v1 import member_pb2, member_pb2_grpc

from ..governance.conftest import GREEN, Running, add_member, approved_grant, fetch, register, verify_org
from .conftest import POLICIES, running_node

METRICS = {"COOPFED_METRICS__LISTEN": "127.0.0.1:0", "COOPFED_STORAGE__SYNCHRONOUS": "NORMAL"}
REGISTER = "/coopfed.v1.MemberService/Register"
UPLOAD = "/coopfed.v1.MemberService/UploadReadings"
HH = 1800
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every log record of the process, as the node writes them in JSON, into a buffer."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    yield stream
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _readings(n: int) -> Iterator[member_pb2.ReadingBatch]:
    start = 1_704_067_200
    periods = [start + HH * i for i in range(n)]
    return iter([member_pb2.ReadingBatch(dataset="demand", period_start_unix=periods, kwh=[0.25] * n)])


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """The endpoint's samples, parsed from the exposition format: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


# --- logs ----------------------------------------------------------------------------------


def test_every_call_logs_one_json_line_with_its_request_id_and_no_token(tmp_path, captured):
    with running_node(tmp_path / "node") as (_, address), grpc.insecure_channel(address) as channel:
        stub = member_pb2_grpc.MemberServiceStub(channel)
        reply, call = stub.Register.with_call(
            member_pb2.RegisterRequest(display_name="Ada"), metadata=(("x-request-id", "trace-42.a"),)
        )
        assert ("x-request-id", "trace-42.a") in call.initial_metadata()
        token = reply.token
        _, call = stub.UploadReadings.with_call(_readings(3), metadata=bearer(token))
        generated = dict(call.initial_metadata())["x-request-id"]
        assert generated
        assert generated != "trace-42.a"
        # an id that is not a short plain token is replaced, not logged
        _, call = stub.GetConsent.with_call(
            member_pb2.GetConsentRequest(), metadata=(*bearer(token), ("x-request-id", "a b;" + "x" * 80))
        )
        assert dict(call.initial_metadata())["x-request-id"].isalnum()
        # a refused call (a tampered token) carries its id too
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetConsent(member_pb2.GetConsentRequest(), metadata=bearer(token[:-4] + "AAAA"))
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "x-request-id" in dict(refused.value.initial_metadata())
        logging.getLogger("coopfed.test").warning("a careless line: Bearer %s and %s", token, token)

    lines = _lines(captured)
    assert all(set(line) >= {"time", "level", "logger", "request_id", "message"} for line in lines)
    calls = {line["message"].split()[0]: line for line in lines if line["message"].startswith("/")}
    assert calls[REGISTER]["request_id"] == "trace-42.a"
    assert calls[REGISTER]["message"].split()[1] == "OK"
    assert calls[UPLOAD]["request_id"] == generated
    assert "UNAUTHENTICATED" in {
        line["message"].split()[1] for line in lines if "GetConsent" in line["message"]
    }
    assert calls[REGISTER]["time"][-6] in "+-"  # ISO 8601, with the UTC offset
    text = captured.getvalue()
    assert token not in text
    assert token.split(".")[2] not in text  # not even its signature
    assert f"Bearer {REDACTED}" in text


def test_redaction_catches_bearer_tokens_and_jwts_but_keeps_plain_words():
    jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJtLTEifQ.c2lnbmF0dXJl"
    assert redact("authorization: Bearer abc.def-123 rest") == f"authorization: Bearer {REDACTED} rest"
    assert redact(f"grant {jwt} issued") == f"grant {REDACTED} issued"
    assert redact("request req-1234 approved for Example University") == (
        "request req-1234 approved for Example University"
    )


def test_text_logs_are_one_line_per_event_even_with_a_traceback():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("info", "text", stream=stream)
        try:
            raise ValueError("token eyJa.eyJb.c")
        except ValueError:
            logging.getLogger("coopfed.test").exception("it failed")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    (line,) = stream.getvalue().splitlines()
    assert " ERROR coopfed.test [-] it failed | Traceback" in line
    assert "eyJa" not in line


@pytest.mark.parametrize(("level", "format"), [("loud", "text"), ("info", "xml")])
def test_bad_log_settings_are_refused_by_name(level, format):
    with pytest.raises(InvalidArgument, match=r"\[log\]"):
        configure_logging(level, format, stream=io.StringIO())


# --- metrics -------------------------------------------------------------------------------


def test_metrics_count_calls_readings_decisions_releases_and_name_the_revision(tmp_path):
    with (
        running_node(tmp_path / "node", env=METRICS) as (node, address),
        grpc.insecure_channel(address) as channel,
    ):
        gov = Running(node, address, channel)
        reply = gov.members.Register(member_pb2.RegisterRequest(display_name="Ada"))
        gov.members.UploadReadings(_readings(48), metadata=bearer(reply.token))
        with pytest.raises(grpc.RpcError):
            gov.members.GetConsent(member_pb2.GetConsentRequest())  # no token
        for _ in range(5):
            add_member(node, GREEN)
        organisation, md = register(gov)
        verify_org(gov, organisation)
        grant = approved_grant(gov, md)
        assert fetch(gov, grant.token)
        samples = scrape(node.metrics.endpoint.port)
        revision = node.policy.revision

    def calls(method: str, code: str) -> float:
        return samples[("coopfed_rpc_calls_total", (("code", code), ("method", method)))]

    assert calls(REGISTER, "OK") == 1
    assert calls(UPLOAD, "OK") == 1
    assert calls("/coopfed.v1.MemberService/GetConsent", "UNAUTHENTICATED") == 1
    assert samples[("coopfed_rpc_duration_seconds_count", (("code", "OK"), ("method", UPLOAD)))] == 1
    assert samples[("coopfed_rpc_duration_seconds_sum", (("code", "OK"), ("method", UPLOAD)))] > 0
    assert samples[("coopfed_readings_stored_total", ())] == 48  # the upload; add_member bypasses the API

    def decisions(policy: str, outcome: str) -> float:
        return samples.get(("coopfed_decisions_total", (("outcome", outcome), ("policy", policy))), 0)

    assert decisions("coopfed/governance/decision", "approve") == 1
    assert decisions("coopfed/governance/verification", "verified") == 1
    assert decisions("coopfed/governance/release", "recorded") == 1
    assert decisions("coopfed/consent/decision", "allowed") >= 1
    assert samples[("coopfed_releases_total", (("flow", "third_party"),))] == 1
    assert samples[("coopfed_policy_info", (("revision", revision),))] == 1


def test_metrics_are_off_by_default(tmp_path):
    with running_node(tmp_path / "node") as (node, _):
        assert node.metrics.endpoint is None


def _start(tmp_path: Path, env: dict[str, str]) -> None:
    config = init_node(tmp_path, node_id="m", name="m", listen="127.0.0.1:0", policies=POLICIES)
    with open_node(load_settings(config, environ=env)) as node:

        async def start_stop() -> None:
            server = NodeServer(node)
            await server.start()
            await server.stop(0)

        asyncio.run(start_stop())


def test_metrics_off_loopback_are_refused_unless_allowed(tmp_path):
    with pytest.raises(FailedPrecondition, match="loopback"):
        _start(tmp_path / "a", {"COOPFED_METRICS__LISTEN": "0.0.0.0:0"})
    _start(tmp_path / "b", {"COOPFED_METRICS__LISTEN": "0.0.0.0:0", "COOPFED_METRICS__ALLOW_REMOTE": "true"})


def test_a_metrics_port_in_use_is_a_clear_error(tmp_path):
    with running_node(tmp_path / "node", env=METRICS) as (node, _):
        taken = f"127.0.0.1:{node.metrics.endpoint.port}"
        with pytest.raises(FailedPrecondition, match=f"cannot serve metrics on {taken}"):
            _start(tmp_path / "b", {"COOPFED_METRICS__LISTEN": taken})


# --- health and reflection -----------------------------------------------------------------


def test_health_check_watch_and_list_need_no_credential(tmp_path):
    with running_node(tmp_path / "node") as (_, address), grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        serving = health_pb2.HealthCheckResponse.SERVING
        assert health.Check(health_pb2.HealthCheckRequest()).status == serving
        assert (
            health.Check(health_pb2.HealthCheckRequest(service="coopfed.v1.MemberService")).status == serving
        )
        with pytest.raises(grpc.RpcError) as unknown:
            health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
        assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
        watch = health.Watch(health_pb2.HealthCheckRequest(service="coopfed.v1.GovernanceService"))
        assert next(watch).status == serving
        watch.cancel()
        statuses = health.List(health_pb2.HealthListRequest()).statuses
    assert {"", "coopfed.v1.MemberService", "coopfed.v1.DataService", "grpc.health.v1.Health"} <= set(
        statuses
    )
    assert {s.status for s in statuses.values()} == {serving}


def _v1_reflection(channel: grpc.Channel, request: dict) -> object:
    """One request over the v1 protocol, with v1 messages from the descriptor pool."""
    pool = descriptor_pool.Default()
    req = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("grpc.reflection.v1.ServerReflectionRequest")
    )
    resp = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("grpc.reflection.v1.ServerReflectionResponse")
    )
    info = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=req.SerializeToString,
        response_deserializer=resp.FromString,
    )
    return next(info(iter([req(**request)])))


def test_reflection_lists_and_describes_services_over_v1_and_v1alpha(tmp_path):
    with running_node(tmp_path / "node") as (_, address), grpc.insecure_channel(address) as channel:
        alpha = ProtoReflectionDescriptorDatabase(channel)
        services = set(alpha.get_services())
        member = alpha.FindFileContainingSymbol("coopfed.v1.MemberService")
        v1_list = _v1_reflection(channel, {"list_services": ""})
        v1_file = _v1_reflection(channel, {"file_containing_symbol": "coopfed.v1.MemberService"})
        v1_self = _v1_reflection(channel, {"file_containing_symbol": REFLECTION_V1})
    expected = {
        "coopfed.v1.MemberService",
        "grpc.health.v1.Health",
        REFLECTION_V1,
        "grpc.reflection.v1alpha.ServerReflection",
    }
    assert expected <= services
    assert member.name == "coopfed/v1/member.proto"
    assert {s.name for s in v1_list.list_services_response.service} == services
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(b)
        for b in v1_file.file_descriptor_response.file_descriptor_proto
    ]
    assert "coopfed/v1/member.proto" in {f.name for f in files}
    (described,) = [
        descriptor_pb2.FileDescriptorProto.FromString(b)
        for b in v1_self.file_descriptor_response.file_descriptor_proto
    ]
    assert described.package == "grpc.reflection.v1"
    assert described.service[0].method[0].input_type == ".grpc.reflection.v1.ServerReflectionRequest"
