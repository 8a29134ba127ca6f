"""MemberService over real gRPC: registration, consent, uploads, export, erasure, and bad input."""

from __future__ import annotations

import time

import grpc
import jwt
import pytest
from google.protobuf import any_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from coopfed.federation.keys import KeyRing
from coopfed.federation.tokens import TokenUse, issue_token
from coopfed.node.client import bearer
from coopfed.v1 import common_pb2, member_pb2

from .conftest import Member

HH = 1800
BASE = (int(time.time()) // HH - 48 * 10) * HH  # ten days ago, on a half-hour boundary


def batch(
    dataset: str = "demand", start: int = BASE, kwh: list[float] | None = None
) -> member_pb2.ReadingBatch:
    values = kwh if kwh is not None else [0.25 + 0.01 * i for i in range(48)]
    return member_pb2.ReadingBatch(
        dataset=dataset, period_start_unix=[start + HH * i for i in range(len(values))], kwh=values
    )


def export_readings(stub, member: Member) -> dict[tuple[str, int], float]:
    out = {}
    for chunk in stub.ExportMyData(member_pb2.ExportRequest(), metadata=member.md):
        if chunk.HasField("readings"):
            r = chunk.readings
            out.update({(r.dataset, p): k for p, k in zip(r.period_start_unix, r.kwh, strict=True)})
    return out


def error_detail(err: grpc.RpcError) -> common_pb2.ErrorDetail:
    status = rpc_status.from_call(err)
    detail = common_pb2.ErrorDetail()
    any_msg: any_pb2.Any = status.details[0]
    any_msg.Unpack(detail)
    return detail


def test_new_member_starts_red_and_can_upload_and_export(stub, member):
    assert (
        stub.GetConsent(member_pb2.GetConsentRequest(), metadata=member.md).level
        == common_pb2.CONSENT_LEVEL_RED
    )
    summary = stub.UploadReadings(
        iter([batch(), batch("generation", kwh=[0.0] * 10 + [1.5] * 10)]), metadata=member.md
    )
    assert (summary.inserted, summary.replaced) == (68, 0)
    readings = export_readings(stub, member)
    assert len(readings) == 68
    assert readings[("demand", BASE + HH * 3)] == pytest.approx(0.28)


def test_reupload_replaces_never_duplicates(stub, member):
    stub.UploadReadings(iter([batch(kwh=[1.0] * 48)]), metadata=member.md)
    summary = stub.UploadReadings(iter([batch(kwh=[2.0] * 24)]), metadata=member.md)
    assert (summary.inserted, summary.replaced) == (0, 24)
    readings = export_readings(stub, member)
    assert len(readings) == 48
    assert readings[("demand", BASE)] == 2.0
    assert readings[("demand", BASE + HH * 30)] == 1.0


@pytest.mark.parametrize(
    ("bad", "field", "code"),
    [
        (batch(kwh=[0.1, 0.2, 0.3, -0.4]), "batches[1].kwh[3]", "reading.negative"),
        (batch(kwh=[0.1, float("nan")]), "batches[1].kwh[1]", "reading.not_finite"),
        (batch(kwh=[0.1, float("inf")]), "batches[1].kwh[1]", "reading.not_finite"),
        (batch(start=BASE + 60, kwh=[0.1]), "batches[1].period_start_unix[0]", "reading.misaligned"),
        (
            batch(start=(int(time.time()) // HH + 2) * HH, kwh=[0.1]),
            "batches[1].period_start_unix[0]",
            "reading.future",
        ),
        (batch("gas", kwh=[0.1]), "batches[1].dataset", "reading.unknown_dataset"),
        (
            member_pb2.ReadingBatch(dataset="demand", period_start_unix=[BASE], kwh=[1.0, 2.0]),
            "batches[1]",
            "reading.length_mismatch",
        ),
        (batch(start=BASE, kwh=[0.5]), "batches[1].period_start_unix[0]", "reading.duplicate"),
    ],
)
def test_bad_input_names_row_and_field_and_stores_nothing(stub, member, bad, field, code):
    stub.UploadReadings(iter([batch("export", kwh=[0.3])]), metadata=member.md)
    with pytest.raises(grpc.RpcError) as caught:
        stub.UploadReadings(iter([batch(), bad]), metadata=member.md)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = error_detail(caught.value)
    assert (detail.field, detail.code) == (field, code)
    assert field in caught.value.details()
    assert export_readings(stub, member) == {("export", BASE): 0.3}  # the good first batch was not stored


def test_oversized_message_is_invalid_argument(stub, member):
    huge = batch(kwh=[0.1] * 48)
    huge.period_start_unix.extend([BASE] * 600_000)
    huge.kwh.extend([0.1] * 600_000)
    with pytest.raises(grpc.RpcError) as caught:
        stub.UploadReadings(iter([huge]), metadata=member.md)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_detail(caught.value).code == "reading.message_too_large"


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer not-a-jwt"),), (("authorization", "Basic abc"),)],
)
def test_calls_without_a_valid_token_are_unauthenticated(stub, metadata):
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetConsent(member_pb2.GetConsentRequest(), metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_token_signed_by_another_key_or_as_wrong_use_is_refused(stub, member, node, tmp_path):
    running, _ = node
    forged = issue_token(
        KeyRing.load_or_create(tmp_path / "other"),
        issuer=running.node_id,
        subject=member.id,
        audience=running.node_id,
        use=TokenUse.ACCESS,
        ttl=600,
        claims={"role": "member"},
    )
    wrong_use = issue_token(
        running.keys,
        issuer=running.node_id,
        subject=member.id,
        audience=running.node_id,
        use=TokenUse.GRANT,
        ttl=600,
        claims={"role": "member"},
    )
    header = jwt.get_unverified_header(member.token)
    unsigned = jwt.encode(
        {**jwt.decode(member.token, options={"verify_signature": False})},
        key=None,
        algorithm="none",
        headers={"kid": header["kid"]},
    )
    for token in (forged, wrong_use, unsigned):
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetConsent(member_pb2.GetConsentRequest(), metadata=bearer(token))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_member_cannot_touch_another_members_data(stub, member):
    other = Member(stub, "Grace")
    for call in (
        lambda: stub.GetConsent(member_pb2.GetConsentRequest(member_id=other.id), metadata=member.md),
        lambda: list(stub.ExportMyData(member_pb2.ExportRequest(member_id=other.id), metadata=member.md)),
        lambda: stub.EraseMe(member_pb2.EraseRequest(confirm_member_id=other.id), metadata=member.md),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (
        stub.GetConsent(member_pb2.GetConsentRequest(), metadata=other.md).level
        == common_pb2.CONSENT_LEVEL_RED
    )


def test_consent_change_is_recorded_with_a_signed_receipt(stub, member, node):
    running, _ = node
    settings = member_pb2.ConsentSettings(
        level=common_pb2.CONSENT_LEVEL_AMBER,
        choices=[common_pb2.DatasetChoice(dataset="demand", allowed_flows=[common_pb2.FLOW_COOP_TO_COOP])],
    )
    reply = stub.SetConsent(member_pb2.SetConsentRequest(settings=settings), metadata=member.md)
    assert "level: red -> amber" in reply.record.changes
    assert stub.GetConsent(member_pb2.GetConsentRequest(), metadata=member.md) == settings
    kid = jwt.get_unverified_header(reply.receipt)["kid"]
    body = jwt.decode(reply.receipt, key=running.keys.jwks()[kid], algorithms=["EdDSA"], audience=member.id)
    receipt = body["receipt"]
    assert receipt["piiPrincipalId"] == member.id
    assert receipt["consentReceiptID"] == reply.record.record_id
    shared = {s["service"]: s for s in receipt["services"]}
    coop = [p for s in shared.values() for p in s["purposes"] if p["thirdPartyDisclosure"]]
    assert coop, "amber with coop_to_coop for demand discloses demand to aligned co-ops"
    assert all(p["piiCategory"] == ["demand"] for p in coop)
    assert all(code.startswith("dpv:") for p in coop for code in p["purposeCategory"])

    red = member_pb2.ConsentSettings(level=common_pb2.CONSENT_LEVEL_RED)
    withdrawal = stub.SetConsent(
        member_pb2.SetConsentRequest(settings=red, withdrawal_reason="moving house"), metadata=member.md
    )
    assert withdrawal.record.withdrawal_reason == "moving house"
    profile = next(iter(stub.ExportMyData(member_pb2.ExportRequest(), metadata=member.md))).profile
    assert [r.record_id for r in profile.consent_history][-2:] == [
        reply.record.record_id,
        withdrawal.record.record_id,
    ]


def test_personas_come_from_policy_data_and_unknown_ones_are_refused(stub, member):
    personas = stub.ListPersonas(member_pb2.ListPersonasRequest()).personas
    assert len(personas) >= 3
    assert all(p.title and p.description and p.version for p in personas)
    chosen = member_pb2.ConsentSettings(persona=personas[0].name)
    stub.SetConsent(member_pb2.SetConsentRequest(settings=chosen), metadata=member.md)
    assert stub.GetConsent(member_pb2.GetConsentRequest(), metadata=member.md).persona == personas[0].name
    with pytest.raises(grpc.RpcError) as caught:
        stub.SetConsent(
            member_pb2.SetConsentRequest(settings=member_pb2.ConsentSettings(persona="nobody")),
            metadata=member.md,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_erase_removes_readings_and_disables_the_token(stub, member):
    stub.UploadReadings(iter([batch()]), metadata=member.md)
    reply = stub.EraseMe(member_pb2.EraseRequest(confirm_member_id=member.id), metadata=member.md)
    assert reply.readings_erased == 48
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetConsent(member_pb2.GetConsentRequest(), metadata=member.md)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_health_is_serving(node):
    with grpc.insecure_channel(node[1]) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="coopfed.v1.MemberService")
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
