"""Governance over real gRPC: catalogue, registration, decisions, review, grants, release, transparency."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest

from coopfed.node.client import bearer
from coopfed.node.decisionlog import verify
from coopfed.node.governance.service import parts
from coopfed.v1 import governance_pb2 as pb
from coopfed.v1 import member_pb2

from .conftest import (
    GREEN,
    HH,
    JAN,
    RED,
    Running,
    add_member,
    approved_grant,
    data_request,
    fetch,
    policies_with,
    register,
    start,
    verify_org,
)

pytestmark = pytest.mark.integration


def _code(call, *args, **kwargs) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call(*args, **kwargs)
    return err.value.code()


def test_catalogue_describes_datasets_and_the_period_held(gov: Running) -> None:
    add_member(gov.node, GREEN, days=2)
    reply = gov.governance.ListDatasets(pb.ListDatasetsRequest())
    demand = {d.id: d for d in reply.datasets}["demand"]
    assert reply.publisher
    assert (demand.period_available.start_unix, demand.period_available.end_unix) == (JAN, JAN + 2 * 86_400)
    assert set(demand.granularities) == {pb.GRANULARITY_AGGREGATE, pb.GRANULARITY_INDIVIDUAL}
    assert {f.name for f in demand.fields} == {"kwh", "member_count", "member_ref"}
    assert demand.sensitivity == "personal"
    assert "PT30M" in demand.temporal_resolutions
    generation = {d.id: d for d in reply.datasets}["generation"]
    assert not generation.HasField("period_available")
    purposes = {p.code: p for p in gov.governance.ListPurposes(pb.ListPurposesRequest()).purposes}
    assert purposes["dpv:AcademicResearch"].among_aims
    assert purposes["dpv:SellDataToThirdParties"].prohibited


def test_an_organisation_is_assessed_at_registration_and_sees_only_itself(gov: Running) -> None:
    org_id, md = register(gov)
    org = gov.governance.GetOrganisation(pb.GetOrganisationRequest(), metadata=md)
    assert org.organisation_id == org_id
    assert not org.verified
    assert {d.name for d in org.assessment.dimensions} == {"type", "ethos", "track_record", "verification"}
    assert org.assessment.expires_at == org.assessment.assessed_at  # unverified: not reused
    other, _ = register(gov)
    assert _code(
        gov.governance.GetOrganisation, pb.GetOrganisationRequest(organisation_id=other), metadata=md
    ) == (grpc.StatusCode.PERMISSION_DENIED)
    bad = pb.RegisterOrganisationRequest(name="X", type="secret_society")
    assert _code(gov.governance.RegisterOrganisation, bad) == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(gov.governance.ListMyRequests, pb.ListMyRequestsRequest()) == grpc.StatusCode.UNAUTHENTICATED
    member_token = gov.members.Register(member_pb2.RegisterRequest(display_name="Ada")).token
    refused = _code(gov.governance.ListMyRequests, pb.ListMyRequestsRequest(), metadata=bearer(member_token))
    assert refused == grpc.StatusCode.UNAUTHENTICATED
    assert (
        _code(gov.review.ListReferred, pb.ListReferredRequest(), metadata=md)
        == grpc.StatusCode.UNAUTHENTICATED
    )


def test_referral_review_grant_release_and_transparency(gov: Running) -> None:
    early = [add_member(gov.node, GREEN, days=1) for _ in range(4)]  # only on 1 January: 4 < k
    later = [add_member(gov.node, GREEN, days=30, first_day=1) for _ in range(5)]
    red = add_member(gov.node, RED, days=31)
    org_id, md = register(gov)
    status = gov.governance.SubmitDataRequest(data_request(), metadata=md)
    assert status.state == pb.REQUEST_STATE_AWAITING_REVIEW
    assert any("not verified" in r for r in status.policy_decision.reasons)
    assert [s.stage for s in status.policy_decision.stages] == ["requirement", "organisation", "purpose"]
    referred = gov.review.ListReferred(pb.ListReferredRequest(), metadata=gov.board()).requests
    assert [r.request_id for r in referred] == [status.request_id]
    assert not referred[0].HasField("grant")
    decided = gov.review.RecordDecision(
        pb.RecordDecisionRequest(
            request_id=status.request_id, outcome=pb.OUTCOME_APPROVE, reason="Useful study"
        ),
        metadata=gov.board(),
    )
    assert decided.state == pb.REQUEST_STATE_APPROVED
    assert decided.grant.token == ""  # the board never sees the grantee's credential
    again = pb.RecordDecisionRequest(
        request_id=status.request_id, outcome=pb.OUTCOME_REJECT, reason="changed mind"
    )
    assert (
        _code(gov.review.RecordDecision, again, metadata=gov.board()) == grpc.StatusCode.FAILED_PRECONDITION
    )
    mine = gov.governance.GetDecision(pb.GetDecisionRequest(request_id=status.request_id), metadata=md)
    assert mine.review.reasons == ["Useful study"]
    chunks = fetch(gov, mine.grant.token)
    kinds = [c.WhichOneof("content") for c in chunks]
    assert kinds == ["header", "aggregate", "summary"]
    series, summary = chunks[1].aggregate, chunks[2].summary
    assert chunks[0].header.min_group_size == 5
    assert series.period_start_unix[0] == JAN + 86_400  # 1 January had only 4 members: withheld
    assert set(series.member_count) == {5}
    assert np.allclose(series.kwh, 2.5)
    assert summary.cells_suppressed == 48
    assert summary.members_released == 5
    for member in later:
        entries = gov.node.governance.access_for_member(member)
        assert len(entries) == 1
        assert entries[0].organisation_id == org_id
        assert entries[0].decision_id == status.policy_decision.decision_id
    for member in [*early, red]:
        assert gov.node.governance.access_for_member(member) == []
    log = list(gov.node.governance.decision_log())
    assert verify(log).ok
    assert not any(m in line for line in log for m in [*early, *later, red])
    text = "\n".join(log)
    assert "Evening peaks in community energy use" not in text  # free text is kept as a digest only
    assert "/input/request/purpose/description" in text
    assert "coopfed/consent/decision" in text  # consent decisions behind the release are logged too


def test_members_see_who_accessed_their_data(gov: Running) -> None:
    reply = gov.members.Register(member_pb2.RegisterRequest(display_name="Grace"))
    me = reply.member_id
    gov.node.store.admit_member(me, by="board")  # an applicant's data is in no release
    gov.node.store.set_consent(me, GREEN)
    periods = JAN + HH * np.arange(48, dtype=np.int64)
    gov.node.store.put_readings(me, [("demand", periods, np.ones(48))])
    for _ in range(4):
        add_member(gov.node, GREEN, days=1)
    org_id, md = register(gov)
    grant = approved_grant(gov, md, data_request(days=1))
    fetch(gov, grant.token)
    entries = gov.members.ListDataAccess(
        member_pb2.ListDataAccessRequest(), metadata=bearer(reply.token)
    ).entries
    assert len(entries) == 1
    entry = entries[0]
    assert entry.organisation_id == org_id
    assert entry.organisation_name == "Example University"
    assert entry.purpose == "dpv:AcademicResearch"
    assert entry.purpose_label == "academic research"
    assert entry.grant_id == grant.grant_id
    assert entry.decision_id
    assert entry.consent_decision_id
    assert entry.dataset == "demand"
    other = pb.GetDecisionRequest(request_id=grant.request_id)
    assert _code(gov.governance.GetDecision, other, metadata=register(gov)[1]) == grpc.StatusCode.NOT_FOUND


def test_a_verified_organisation_is_approved_at_once_and_assessed_only_once(gov: Running) -> None:
    for _ in range(5):
        add_member(gov.node, GREEN)
    org_id, md = register(gov, commitments=("not_for_profit", "open_publication", "ethics_approval"))
    verify_org(gov, org_id)
    org = gov.governance.GetOrganisation(pb.GetOrganisationRequest(), metadata=md)
    assert org.verified
    assert org.assessment.expires_at.seconds > org.assessment.assessed_at.seconds
    first = gov.governance.SubmitDataRequest(data_request(), metadata=md)
    second = gov.governance.SubmitDataRequest(data_request(days=7), metadata=md)
    assert first.state == second.state == pb.REQUEST_STATE_APPROVED
    assert first.grant.token
    paths = [line for line in gov.node.governance.decision_log() if "organisation/assessment" in line]
    assert len(paths) == 2  # at registration and at verification; neither request re-assessed it
    grants = gov.governance.ListMyGrants(pb.ListMyGrantsRequest(), metadata=md).grants
    assert {g.grant_id for g in grants} == {first.grant.grant_id, second.grant.grant_id}


def test_rejections_carry_reasons_and_issue_no_grant(gov: Running) -> None:
    add_member(gov.node, GREEN)
    _, md = register(gov)
    status = gov.governance.SubmitDataRequest(data_request(purpose="dpv:SellDataToThirdParties"), metadata=md)
    assert status.state == pb.REQUEST_STATE_REJECTED
    assert not status.HasField("grant")
    assert any("never releases data for selling data" in r for r in status.policy_decision.reasons)
    too_few = gov.governance.SubmitDataRequest(data_request(), metadata=md)
    assert too_few.state == pb.REQUEST_STATE_REJECTED
    assert any("Only 1 members allow" in r for r in too_few.policy_decision.reasons)
    requirement = too_few.policy_decision.stages[0]
    assert not requirement.passed
    assert {d.name: d.passed for d in requirement.dimensions}["consent"] is False


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"datasets": []}, "datasets"),
        ({"datasets": ["demand", "demand"]}, "datasets"),
        ({"datasets": ["Demand; DROP TABLE"]}, "datasets[0]"),
        ({"granularity": 0}, "granularity"),
        ({"granularity": 9}, "granularity"),
        ({"flow": 0}, "flow"),
        ({"purpose": "dpv:Whatever"}, "purpose"),
        ({"purpose_description": "x" * 2001}, "purpose_description"),
        ({"commitments": ["world_peace"]}, "commitments[0]"),
        ({"period": {"start_unix": JAN + 60, "end_unix": JAN + 86_400}}, "period"),
        ({"period": {"start_unix": JAN, "end_unix": JAN}}, "period"),
        ({"period": {"start_unix": -1800, "end_unix": JAN}}, "period"),
    ],
)
def test_malformed_requests_are_refused_and_change_nothing(gov: Running, change: dict, field: str) -> None:
    _, md = register(gov)
    head = gov.node.governance.decision_log_head()
    request = data_request()
    for key, value in change.items():
        request.ClearField(key)
        if isinstance(value, dict):
            getattr(request, key).start_unix = value["start_unix"]
            getattr(request, key).end_unix = value["end_unix"]
        elif isinstance(value, list):
            getattr(request, key).extend(value)
        else:
            setattr(request, key, value)
    with pytest.raises(grpc.RpcError) as err:
        gov.governance.SubmitDataRequest(request, metadata=md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field.split("[")[0] in err.value.details()
    assert gov.governance.ListMyRequests(pb.ListMyRequestsRequest(), metadata=md).requests == []
    assert gov.node.governance.decision_log_head() == head


def test_missing_period_is_invalid(gov: Running) -> None:
    _, md = register(gov)
    request = data_request()
    request.ClearField("period")
    assert _code(gov.governance.SubmitDataRequest, request, metadata=md) == grpc.StatusCode.INVALID_ARGUMENT


def test_shadow_mode_refers_everything_and_records_agreement(tmp_path: Path) -> None:
    for gov in start(tmp_path, policies_with(tmp_path, shadow_mode=True)):
        for _ in range(5):
            add_member(gov.node, GREEN)
        org_id, md = register(gov, commitments=("not_for_profit", "open_publication", "ethics_approval"))
        verify_org(gov, org_id)
        good = gov.governance.SubmitDataRequest(data_request(), metadata=md)
        bad = gov.governance.SubmitDataRequest(data_request(purpose="dpv:Marketing"), metadata=md)
        for status, proposed in ((good, pb.OUTCOME_APPROVE), (bad, pb.OUTCOME_REJECT)):
            assert status.state == pb.REQUEST_STATE_AWAITING_REVIEW
            assert status.policy_decision.shadow
            assert status.policy_decision.outcome == pb.OUTCOME_REFER
            assert status.policy_decision.proposed == proposed
        board = gov.board("grace")
        for status in (good, bad):  # the board rejects both: disagrees once, agrees once
            gov.review.RecordDecision(
                pb.RecordDecisionRequest(
                    request_id=status.request_id, outcome=pb.OUTCOME_REJECT, reason="not this year"
                ),
                metadata=board,
            )
        reply = gov.review.ListDecisions(pb.ListDecisionsRequest(decided_by="board"), metadata=board)
        assert (reply.reviewed, reply.agreed) == (2, 1)
        by_request = {d.request_id: d.agreed_with_policy for d in reply.decisions}
        assert by_request == {good.request_id: False, bad.request_id: True}
        policy = gov.review.ListDecisions(
            pb.ListDecisionsRequest(decided_by="policy", outcome=pb.OUTCOME_REFER), metadata=board
        )
        assert len(policy.decisions) == 2
        assert all(d.decided_by == "policy" for d in policy.decisions)
        missing = gov.governance.SubmitDataRequest(data_request(datasets=("export",)), metadata=md)
        assert missing.policy_decision.proposed == pb.OUTCOME_REJECT
        approve = pb.RecordDecisionRequest(
            request_id=missing.request_id, outcome=pb.OUTCOME_APPROVE, reason="ok"
        )
        with pytest.raises(grpc.RpcError) as err:
            gov.review.RecordDecision(approve, metadata=board)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "not available" in err.value.details()
        log = "\n".join(gov.node.governance.decision_log())
        assert "board:grace" not in log  # reviewers are pseudonymised in the log
        assert "pseud:" in log


def test_the_board_decides_only_requests_awaiting_review(gov: Running) -> None:
    _, md = register(gov)
    status = gov.governance.SubmitDataRequest(
        data_request(granularity=pb.GRANULARITY_INDIVIDUAL, fields=("kwh",)), metadata=md
    )
    assert status.state == pb.REQUEST_STATE_REJECTED  # nothing held yet: not even referred
    assert (
        _code(
            gov.review.RecordDecision,
            pb.RecordDecisionRequest(
                request_id=status.request_id, outcome=pb.OUTCOME_APPROVE, reason="please"
            ),
            metadata=gov.board(),
        )
        == grpc.StatusCode.FAILED_PRECONDITION
    )
    assert (
        _code(
            gov.review.RecordDecision,
            pb.RecordDecisionRequest(request_id="req-nope", outcome=pb.OUTCOME_APPROVE, reason="x"),
            metadata=gov.board(),
        )
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        _code(
            gov.review.RecordDecision,
            pb.RecordDecisionRequest(request_id=status.request_id, outcome=pb.OUTCOME_APPROVE, reason=" "),
            metadata=gov.board(),
        )
        == grpc.StatusCode.INVALID_ARGUMENT
    )


def test_a_verified_assessment_is_reused_until_it_expires(gov: Running) -> None:
    org_id, _ = register(gov)
    verify_org(gov, org_id)
    org = gov.node.governance.get_organisation(org_id)
    expires = org.assessment.expires_at
    reused, events = parts(gov.node).organisations.current_assessment(org, expires - 1)
    assert reused == org.assessment
    assert events == []
    fresh, events = parts(gov.node).organisations.current_assessment(org, expires)
    assert fresh.decision_id != org.assessment.decision_id
    assert [e["path"] for e in events] == ["coopfed/governance/organisation/assessment"]
