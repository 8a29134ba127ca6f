"""Conversion between governance protobuf messages and the node's governance records, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from coopfed.federation.grants import GrantScope
from coopfed.node.convert import (
    flow_from_proto,
    flow_to_proto,
    granularity_from_proto,
    granularity_to_proto,
    period_from_proto,
    timestamp,
)
from coopfed.node.errors import InvalidArgument
from coopfed.node.governance.catalogue import DatasetEntry
from coopfed.node.model import Flow
from coopfed.node.storage import Member
from coopfed.node.storage.records import (
    AccessEntry,
    Assessment,
    DataRequestRecord,
    Decision,
    GrantRecord,
    Organisation,
    OrganisationProfile,
    Outcome,
    RequestSpec,
    RequestState,
    Review,
)
from coopfed.v1 import common_pb2, member_pb2
from coopfed.v1 import governance_pb2 as pb


def outcome_from_proto(value: int) -> Outcome:
    names = {
        pb.OUTCOME_APPROVE: Outcome.APPROVE,
        pb.OUTCOME_REJECT: Outcome.REJECT,
        pb.OUTCOME_REFER: Outcome.REFER,
    }
    if value not in pb.Outcome.values():
        raise InvalidArgument("outcome: approve or reject", code="review.outcome", field="outcome")
    return names[pb.Outcome.ValueType(value)]


def outcome_to_proto(value: Outcome | str) -> pb.Outcome.ValueType:
    return {"approve": pb.OUTCOME_APPROVE, "reject": pb.OUTCOME_REJECT, "refer": pb.OUTCOME_REFER}[str(value)]


_STATES = {
    RequestState.AWAITING_REVIEW: pb.REQUEST_STATE_AWAITING_REVIEW,
    RequestState.APPROVED: pb.REQUEST_STATE_APPROVED,
    RequestState.REJECTED: pb.REQUEST_STATE_REJECTED,
}


def _utc(unix: int) -> Any:
    return timestamp(datetime.fromtimestamp(unix, UTC))


def profile_from_proto(msg: pb.RegisterOrganisationRequest) -> OrganisationProfile:
    return OrganisationProfile(
        name=msg.name,
        type=msg.type,
        registration_number=msg.registration_number,
        website=msg.website,
        contact=msg.contact,
        commitments=tuple(msg.commitments),
        description=msg.description,
    )


def spec_from_proto(msg: pb.DataRequest) -> RequestSpec:
    if not msg.HasField("period"):
        raise InvalidArgument("period: required", code="request.period", field="period")
    start, end = period_from_proto(msg.period, code="request.period")
    granularity = granularity_from_proto(msg.granularity, code="request.granularity")
    if granularity is None:
        raise InvalidArgument(
            "granularity: aggregate or individual", code="request.granularity", field="granularity"
        )
    return RequestSpec(
        datasets=tuple(msg.datasets),
        fields=tuple(msg.fields),
        granularity=granularity,
        period_start=start,
        period_end=end,
        flow=flow_from_proto(msg.flow).value,
        purpose=msg.purpose,
        purpose_description=msg.purpose_description.strip(),
        commitments=tuple(msg.commitments),
    )


def spec_to_proto(spec: RequestSpec) -> pb.DataRequest:
    return pb.DataRequest(
        datasets=spec.datasets,
        fields=spec.fields,
        granularity=granularity_to_proto(spec.granularity),
        period=common_pb2.Period(start_unix=spec.period_start, end_unix=spec.period_end),
        flow=flow_to_proto(Flow(spec.flow)),
        purpose=spec.purpose,
        purpose_description=spec.purpose_description,
        commitments=spec.commitments,
    )


def scope_to_proto(scope: GrantScope) -> pb.DataRequest:
    return pb.DataRequest(
        datasets=sorted(scope.datasets),
        fields=sorted(scope.fields),
        granularity=granularity_to_proto(scope.granularity),
        period=common_pb2.Period(start_unix=scope.period_start, end_unix=scope.period_end),
        flow=flow_to_proto(Flow(scope.flow)),
        purpose=scope.purpose,
    )


def dimensions_to_proto(dims: Mapping[str, Any]) -> list[pb.DimensionScore]:
    return [
        pb.DimensionScore(
            name=name,
            title=str(d.get("title", name)),
            score=int(d.get("score", 0)),
            weight=int(d.get("weight", 0)),
            reason=str(d.get("reason", "")),
            passed=d.get("passed", d.get("score", 0) > 0) is True,
        )
        for name, d in sorted(dims.items())
    ]


def assessment_to_proto(a: Assessment) -> pb.Assessment:
    return pb.Assessment(
        score=a.score,
        dimensions=dimensions_to_proto(a.result.get("dimensions", {})),
        reasons=list(a.result.get("reasons", [])),
        assessed_at=_utc(a.assessed_at),
        expires_at=_utc(a.expires_at),
        decision_id=a.decision_id,
        policy_revision=a.revision,
    )


def organisation_to_proto(org: Organisation, *, with_contact: bool) -> pb.Organisation:
    p = org.profile
    msg = pb.Organisation(
        organisation_id=org.organisation_id,
        name=p.name,
        type=p.type,
        registration_number=p.registration_number,
        website=p.website,
        commitments=p.commitments,
        description=p.description,
        registered_at=timestamp(org.registered_at),
        verified=org.verified,
        verification_note=org.verification_note,
        contact=p.contact if with_contact else "",
    )
    if org.assessment is not None:
        msg.assessment.CopyFrom(assessment_to_proto(org.assessment))
    return msg


def _stages(result: Mapping[str, Any]) -> list[pb.StageResult]:
    stages = result.get("stages", {})
    out = []
    for name in ("requirement", "organisation", "purpose"):
        s = stages.get(name, {})
        passed = s.get("passed", not s.get("blocked", False))
        out.append(
            pb.StageResult(
                stage=name,
                score=int(s.get("score", 0)),
                dimensions=dimensions_to_proto(s.get("dimensions", {})),
                reasons=list(s.get("reasons", [])),
                passed=passed is True,
            )
        )
    return out


def decision_to_proto(d: Decision, request_id: str = "", organisation_id: str = "") -> pb.Decision:
    r = d.result
    return pb.Decision(
        decision_id=d.decision_id,
        decided_by="policy",
        outcome=outcome_to_proto(d.outcome),
        proposed=outcome_to_proto(d.proposed),
        shadow=r.get("shadow") is True,
        score=int(r.get("score", 0)),
        stages=_stages(r),
        reasons=list(r.get("reasons", [])),
        policy_revision=d.revision,
        decided_at=timestamp(d.decided_at),
        request_id=request_id,
        organisation_id=organisation_id,
    )


def review_to_proto(rv: Review, request_id: str = "", organisation_id: str = "") -> pb.Decision:
    return pb.Decision(
        decision_id=rv.decision_id,
        decided_by="board",
        outcome=outcome_to_proto(rv.outcome),
        proposed=outcome_to_proto(rv.proposed),
        reasons=[rv.reason],
        decided_at=timestamp(rv.decided_at),
        agreed_with_policy=rv.agreed is True,
        request_id=request_id,
        organisation_id=organisation_id,
    )


def grant_to_proto(g: GrantRecord, *, with_token: bool) -> pb.Grant:
    msg = pb.Grant(
        grant_id=g.grant_id,
        request_id=g.request_id,
        organisation_id=g.organisation_id,
        token=g.token if with_token else "",
        issued_at=_utc(g.issued_at),
        expires_at=_utc(g.expires_at),
        scope=scope_to_proto(g.scope),
        min_group_size=g.min_group_size,
        revoked=g.revoked,
        revocation_reason=g.revocation_reason,
    )
    if g.revoked_at is not None:
        msg.revoked_at.CopyFrom(timestamp(g.revoked_at))
    return msg


def status_to_proto(rec: DataRequestRecord, *, with_token: bool) -> pb.DataRequestStatus:
    msg = pb.DataRequestStatus(
        request_id=rec.request_id,
        organisation_id=rec.organisation_id,
        request=spec_to_proto(rec.spec),
        state=_STATES[rec.state],
        submitted_at=timestamp(rec.submitted_at),
        policy_decision=decision_to_proto(rec.decision, rec.request_id, rec.organisation_id),
    )
    if rec.review is not None:
        msg.review.CopyFrom(review_to_proto(rec.review, rec.request_id, rec.organisation_id))
    if rec.grant is not None:
        msg.grant.CopyFrom(grant_to_proto(rec.grant, with_token=with_token))
    return msg


def dataset_to_proto(entry: DatasetEntry) -> pb.Dataset:
    msg = pb.Dataset(
        id=entry.id,
        title=entry.title,
        description=entry.description,
        unit=entry.unit,
        granularities=[granularity_to_proto(g) for g in entry.granularities],
        temporal_resolutions=entry.temporal_resolutions,
        sensitivity=entry.sensitivity,
        fields=[
            pb.DatasetField(
                name=name,
                title=f["title"],
                description=f["description"],
                granularities=[granularity_to_proto(g) for g in f["granularities"]],
            )
            for name, f in entry.fields
        ],
        keywords=entry.keywords,
    )
    if entry.period is not None:
        msg.period_available.CopyFrom(common_pb2.Period(start_unix=entry.period[0], end_unix=entry.period[1]))
    return msg


def access_to_proto(entry: AccessEntry, purpose_label: str) -> member_pb2.DataAccess:
    return member_pb2.DataAccess(
        at=timestamp(entry.at),
        organisation_id=entry.organisation_id,
        organisation_name=entry.organisation_name,
        purpose=entry.purpose,
        purpose_label=purpose_label,
        flow=flow_to_proto(Flow(entry.flow)),
        dataset=entry.dataset,
        granularity=entry.granularity,
        period=common_pb2.Period(start_unix=entry.period_start, end_unix=entry.period_end),
        request_id=entry.request_id,
        decision_id=entry.decision_id,
        grant_id=entry.grant_id,
        consent_decision_id=entry.consent_decision_id,
        release_id=entry.release_id,
    )


def applicant_to_proto(member: Member) -> pb.Applicant:
    return pb.Applicant(
        member_id=member.member_id,
        display_name=member.display_name,
        applied_at=timestamp(member.created_at),
        has_meter=member.has_meter,
    )


def admission_to_proto(member: Member, decision_id: str = "") -> pb.Admission:
    decided = member.admitted_at or member.refused_at
    return pb.Admission(
        member_id=member.member_id,
        status=member.status,
        decided_at=timestamp(decided) if decided else None,
        reason=member.refusal_reason,
        decision_id=decision_id,
    )
