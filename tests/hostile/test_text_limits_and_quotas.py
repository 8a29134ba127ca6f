"""A megabyte of text in any free-text field of a real node's RPCs is INVALID_ARGUMENT naming the
field and its limit in a short message (never RESOURCE_EXHAUSTED at the transport, never stored);
one organisation flooding data requests or fetches is refused RESOURCE_EXHAUSTED in plain words."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from coopfed.node.client import bearer
from coopfed.node.limits import limit_of
from coopfed.v1 import common_pb2, member_pb2
from coopfed.v1 import governance_pb2 as pb
from tests.governance.conftest import (
    FAST,
    GREEN,
    Running,
    add_member,
    approved_grant,
    data_request,
    fetch,
    register,
    verify_org,
)
from tests.node.conftest import running_node

pytestmark = pytest.mark.integration

HUGE = "x" * 1_000_000


@pytest.fixture
def gov(tmp_path: Path) -> Iterator[Running]:
    env = {**FAST, "COOPFED_NODE__REQUEST_BURST": "3", "COOPFED_NODE__FETCH_BURST": "2"}
    with running_node(tmp_path / "node", env=env) as (node, address), grpc.insecure_channel(address) as ch:
        yield Running(node, address, ch)


def _refused(call: Callable[[], object], field: str) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    details = refused.value.details()
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, (field, details[:200])
    assert field in details
    assert str(limit_of(field.rsplit(".", 1)[-1].split("[")[0])) in details
    assert len(details) < 300


def test_a_megabyte_in_any_text_field_is_refused_by_name(gov: Running) -> None:
    org_id, org = register(gov)
    board = gov.board()
    member = gov.members.Register(member_pb2.RegisterRequest(display_name="Ann"))
    for field in ("display_name", "meter_id", "invitation_code"):
        _refused(lambda f=field: gov.members.Register(member_pb2.RegisterRequest(**{f: HUGE})), field)
    for field in ("name", "type", "registration_number", "website", "contact", "description"):
        request = pb.RegisterOrganisationRequest(name="Org", type="university", contact="a@b.c")
        setattr(request, field, HUGE)
        _refused(lambda r=request: gov.governance.RegisterOrganisation(r), field)
    for field in ("purpose", "purpose_description", "datasets", "fields", "commitments"):
        request = data_request()
        if field in ("datasets", "fields", "commitments"):
            getattr(request, field).append(HUGE)
            field = f"{field}[{len(getattr(request, field)) - 1}]"
        else:
            setattr(request, field, HUGE)
        _refused(lambda r=request: gov.governance.SubmitDataRequest(r, metadata=org), field)
    consent = member_pb2.SetConsentRequest(
        settings=member_pb2.ConsentSettings(level=common_pb2.CONSENT_LEVEL_RED), withdrawal_reason=HUGE
    )
    _refused(lambda: gov.members.SetConsent(consent, metadata=bearer(member.token)), "withdrawal_reason")
    settings = member_pb2.SetConsentRequest(settings=member_pb2.ConsentSettings(persona=HUGE))
    _refused(lambda: gov.members.SetConsent(settings, metadata=bearer(member.token)), "settings.persona")
    decisions = [
        (gov.review.RecordDecision, pb.RecordDecisionRequest(request_id="r-1", reason=HUGE), "reason"),
        (gov.review.AdmitMember, pb.AdmitMemberRequest(member_id=member.member_id, reason=HUGE), "reason"),
        (gov.review.RefuseMember, pb.RefuseMemberRequest(member_id=member.member_id, reason=HUGE), "reason"),
        (
            gov.review.VerifyOrganisation,
            pb.VerifyOrganisationRequest(organisation_id=org_id, note=HUGE),
            "note",
        ),
        (gov.review.RevokeGrant, pb.RevokeGrantRequest(grant_id="g-1", reason=HUGE), "reason"),
        (gov.review.RecordDecision, pb.RecordDecisionRequest(request_id=HUGE, reason="ok"), "request_id"),
    ]
    for method, request, field in decisions:
        _refused(lambda m=method, r=request: m(r, metadata=board), field)
    # nothing of it was stored: one organisation, one applicant, both as first registered
    assert [o.profile.name for o in gov.node.governance.list_organisations()] == ["Example University"]
    assert [a.display_name for a in gov.node.store.applicants()] == ["Ann"]


def test_one_organisation_cannot_flood_requests_or_fetches(gov: Running) -> None:
    for _ in range(5):
        add_member(gov.node, GREEN)
    org_id, org = register(gov)
    verify_org(gov, org_id)
    grant = approved_grant(gov, org)  # the first of three requests the burst allows
    for _ in range(2):
        gov.governance.SubmitDataRequest(data_request(), metadata=org)
    with pytest.raises(grpc.RpcError) as refused:
        gov.governance.SubmitDataRequest(data_request(), metadata=org)
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "too many data requests from your organisation; try again in" in refused.value.details()
    _, other = register(gov)  # another organisation is not held back by the first
    gov.governance.SubmitDataRequest(data_request(), metadata=other)

    for _ in range(2):
        fetch(gov, grant.token)
    with pytest.raises(grpc.RpcError) as refused:
        fetch(gov, grant.token)
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "too many fetches from your organisation" in refused.value.details()
