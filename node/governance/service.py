"""gRPC servicers for governance: third parties (GovernanceService), the board (ReviewService)
and the release of data under a grant (DataService)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc

from coopfed.federation.grants import Granularity
from coopfed.node.auth import Authenticator, caller
from coopfed.node.convert import flow_to_proto, instant_from_proto, period_from_proto, timestamp
from coopfed.node.credentials import Credentials
from coopfed.node.decisionlog import DecisionLog
from coopfed.node.errors import InvalidArgument
from coopfed.node.governance import admission, catalogue, release
from coopfed.node.governance import convert as cv
from coopfed.node.governance.organisations import Organisations, own_organisation
from coopfed.node.governance.release import Releases
from coopfed.node.governance.requests import Requests
from coopfed.node.model import Flow
from coopfed.node.paging import Page
from coopfed.node.policy.holder import PolicyHolder
from coopfed.node.ratelimit import RateLimit
from coopfed.node.release import Cells, Release
from coopfed.node.rpc import rpc
from coopfed.node.runtime import Node
from coopfed.node.settings import NodeSection
from coopfed.node.storage import Store
from coopfed.node.storage.governance import GovernanceStore
from coopfed.node.storage.records import DataRequestRecord, DecisionFilter, RequestState
from coopfed.v1 import common_pb2, member_pb2
from coopfed.v1 import governance_pb2 as pb
from coopfed.v1 import governance_pb2_grpc as pb_grpc


class GovernanceService(pb_grpc.GovernanceServiceServicer):
    def __init__(
        self,
        *,
        store: Store,
        governance: GovernanceStore,
        policy: PolicyHolder,
        decision_log: DecisionLog,
        organisations: Organisations,
        requests: Requests,
        settings: NodeSection,
    ) -> None:
        self.store, self.governance, self.policy, self.decision_log = store, governance, policy, decision_log
        self.organisations, self.requests = organisations, requests
        self.submissions = RateLimit(
            "data requests", settings.request_burst, settings.requests_per_hour, whose="your organisation"
        )

    @rpc
    async def ListDatasets(self, request, context):
        page = Page(self.decision_log, request)
        (after,) = page.after or ("",)
        found = await asyncio.to_thread(
            catalogue.catalogue, self.store, self.policy, after=after, limit=page.fetch
        )
        entries, token = page.cut(found, lambda e: (e.id,))
        publisher = self.policy.data["coop"]["name"]
        return pb.ListDatasetsResponse(
            publisher=publisher, datasets=[cv.dataset_to_proto(e) for e in entries], next_page_token=token
        )

    @rpc
    async def ListPurposes(self, request, context):
        found, token = Page(self.decision_log, request).of_sorted(
            catalogue.purposes(self.policy), lambda p: (p["code"],)
        )
        return pb.ListPurposesResponse(purposes=[pb.PurposeCode(**p) for p in found], next_page_token=token)

    @rpc
    async def RegisterOrganisation(self, request, context):
        profile = cv.profile_from_proto(request)
        org, token = await asyncio.to_thread(self.organisations.register, profile)
        return pb.RegisterOrganisationResponse(
            organisation_id=org.organisation_id,
            token=token,
            organisation=cv.organisation_to_proto(org, with_contact=True),
        )

    @rpc
    async def GetOrganisation(self, request, context):
        org_id = own_organisation(caller().id, request.organisation_id)
        org = await asyncio.to_thread(self.governance.get_organisation, org_id)
        return cv.organisation_to_proto(org, with_contact=True)

    @rpc
    async def SubmitDataRequest(self, request, context):
        self.submissions.take(caller().id)
        spec = cv.spec_from_proto(request)
        record = await asyncio.to_thread(self.requests.submit, caller().id, spec)
        return cv.status_to_proto(record, with_token=True)

    @rpc
    async def GetDecision(self, request, context):
        record = await asyncio.to_thread(self.requests.get_own, caller().id, request.request_id)
        return cv.status_to_proto(record, with_token=True)

    @rpc
    async def ListMyRequests(self, request, context):
        page = Page(self.decision_log, request, caller=caller().id)
        (after,) = page.after or ("",)
        found = await asyncio.to_thread(
            self.governance.list_requests, organisation_id=caller().id, after=after, limit=page.fetch
        )
        records, token = page.cut(found, lambda r: (r.request_id,))
        return pb.ListMyRequestsResponse(
            requests=[cv.status_to_proto(r, with_token=True) for r in records], next_page_token=token
        )

    @rpc
    async def ListMyGrants(self, request, context):
        page = Page(self.decision_log, request, caller=caller().id)
        after = tuple(page.after) if page.after else None
        found = await asyncio.to_thread(
            self.governance.list_grants, caller().id, after=after, limit=page.fetch
        )
        grants, token = page.cut(found, lambda g: (g.issued_at, g.grant_id))
        return pb.ListMyGrantsResponse(
            grants=[cv.grant_to_proto(g, with_token=True) for g in grants], next_page_token=token
        )


class ReviewService(pb_grpc.ReviewServiceServicer):
    def __init__(
        self,
        *,
        store: Store,
        governance: GovernanceStore,
        policy: PolicyHolder,
        decision_log: DecisionLog,
        credentials: Credentials,
        organisations: Organisations,
        requests: Requests,
    ) -> None:
        self.store, self.governance, self.policy, self.decision_log = store, governance, policy, decision_log
        self.credentials, self.organisations, self.requests = credentials, organisations, requests

    @rpc
    async def ListReferred(self, request, context):
        page = Page(self.decision_log, request, caller=caller().id)
        (after,) = page.after or ("",)
        found = await asyncio.to_thread(
            self.governance.list_requests,
            state=RequestState.AWAITING_REVIEW,
            oldest_first=True,
            after=after,
            limit=page.fetch,
        )
        records, token = page.cut(found, lambda r: (r.request_id,))
        return pb.ListReferredResponse(
            requests=[cv.status_to_proto(r, with_token=False) for r in records], next_page_token=token
        )

    @rpc
    async def RecordDecision(self, request, context):
        outcome = cv.outcome_from_proto(request.outcome)
        record = await asyncio.to_thread(
            self.requests.review, request.request_id, caller().id, outcome, request.reason
        )
        return cv.status_to_proto(record, with_token=False)

    @rpc
    async def ListDecisions(self, request, context):
        if request.decided_by not in ("", "policy", "board"):
            raise InvalidArgument(
                "decided_by: policy, board or empty", code="list.decided_by", field="decided_by"
            )
        page = Page(self.decision_log, request, caller=caller().id)
        at, by, request_id = page.after or (None, "", "")
        filters = DecisionFilter(
            decided_by=request.decided_by,
            outcome=cv.outcome_from_proto(request.outcome) if request.outcome else None,
            organisation_id=request.organisation_id,
            since=instant_from_proto(request, "since"),
            until=instant_from_proto(request, "until"),
            limit=page.fetch,
            after=(datetime.fromisoformat(at), by, request_id) if at else None,
        )
        found, reviewed, agreed = await asyncio.to_thread(self.governance.list_decisions, filters)
        rows, token = page.cut(found, _decision_key)
        decisions = [
            cv.review_to_proto(r.review, r.request_id, r.organisation_id)
            if by == "board" and r.review is not None
            else cv.decision_to_proto(r.decision, r.request_id, r.organisation_id)
            for by, r in rows
        ]
        return pb.ListDecisionsResponse(
            decisions=decisions, reviewed=reviewed, agreed=agreed, next_page_token=token
        )

    @rpc
    async def ListOrganisations(self, request, context):
        page = Page(self.decision_log, request, caller=caller().id)
        (after,) = page.after or ("",)
        found = await asyncio.to_thread(self.governance.list_organisations, after=after, limit=page.fetch)
        orgs, token = page.cut(found, lambda o: (o.organisation_id,))
        return pb.ListOrganisationsResponse(
            organisations=[cv.organisation_to_proto(o, with_contact=True) for o in orgs],
            next_page_token=token,
        )

    @rpc
    async def VerifyOrganisation(self, request, context):
        org = await asyncio.to_thread(
            self.organisations.verify,
            request.organisation_id,
            request.verified,
            request.note,
            caller().id,
        )
        return cv.organisation_to_proto(org, with_contact=True)

    @rpc
    async def RevokeGrant(self, request, context):
        grant = await asyncio.to_thread(self.requests.revoke, request.grant_id, request.reason, caller().id)
        return cv.grant_to_proto(grant, with_token=False)

    @rpc
    async def ListApplicants(self, request, context):
        page = Page(self.decision_log, request, caller=caller().id)
        (after,) = page.after or ("",)
        found = await asyncio.to_thread(self.store.applicants, page.fetch, after=after)
        applicants, token = page.cut(found, lambda m: (m.member_id,))
        return pb.ListApplicantsResponse(
            applicants=[cv.applicant_to_proto(m) for m in applicants], next_page_token=token
        )

    @rpc
    async def AdmitMember(self, request, context):
        return await self._decide(request, admit=True)

    @rpc
    async def RefuseMember(self, request, context):
        return await self._decide(request, admit=False)

    async def _decide(self, request, *, admit: bool) -> pb.Admission:
        member, decision_id = await asyncio.to_thread(
            admission.decide,
            self.governance,
            self.decision_log,
            self.policy,
            request.member_id,
            admit,
            request.reason,
            caller().id,
        )
        return cv.admission_to_proto(member, decision_id)

    @rpc
    async def CreateInvitation(self, request, context):
        invitation_id, code, expires = await asyncio.to_thread(
            admission.invite, self.store, self.decision_log, self.policy, request.expires_days, caller().id
        )
        return pb.Invitation(invitation_id=invitation_id, code=code, expires_at=timestamp(expires))

    @rpc
    async def RevokeToken(self, request, context):
        target = request.WhichOneof("target") or ""
        value = getattr(request, target) if target else ""
        revoked = await asyncio.to_thread(
            self.credentials.revoke_target, target, value, request.reason, caller().id
        )
        reply = pb.RevokeTokenResponse(revoked_at=timestamp(revoked.revoked_at))
        if revoked.issued_before:
            reply.issued_before.CopyFrom(timestamp(revoked.issued_before))
        return reply

    @rpc
    async def RenewToken(self, request, context):
        token, expires_at = await asyncio.to_thread(self.credentials.renew_board_token, caller().claims)
        return pb.RenewTokenResponse(token=token, expires_at=timestamp(expires_at))


class DataService(pb_grpc.DataServiceServicer):
    def __init__(self, *, credentials: Credentials, releases: Releases, settings: NodeSection) -> None:
        self.credentials, self.releases = credentials, releases
        self.fetches = RateLimit(
            "fetches", settings.fetch_burst, settings.fetches_per_hour, whose="your organisation"
        )

    @rpc
    async def FetchData(self, request, context):
        self.fetches.take(caller().id)
        grant = caller().claims["grant"]
        release.check_holder(self.credentials, grant, context.invocation_metadata())
        fetch = release.FetchSpec(
            datasets=tuple(request.datasets),
            fields=tuple(request.fields),
            granularity=cv.granularity_from_proto(request.granularity, code="request.granularity"),
            period=period_from_proto(request.period, code="request.period")
            if request.HasField("period")
            else None,
        )
        chunks = _chunks(self.releases, grant, fetch)
        while True:
            # each message is produced (and the grant re-checked) only when the last one was sent
            chunk = await asyncio.to_thread(next, chunks, None)
            if chunk is None:
                return
            yield chunk


def _chunks(releases: Releases, grant: Any, fetch: release.FetchSpec) -> Iterator[pb.DataChunk]:
    plan = releases.plan(grant, fetch)
    releases.check_live(grant)
    yield pb.DataChunk(header=_header(plan))
    tally = release.Tally()
    if plan.ask.granularity == Granularity.AGGREGATE.value:
        for series in releases.aggregates(plan, tally):
            releases.check_live(grant)
            yield pb.DataChunk(aggregate=_aggregate(series))
    else:
        yield from _individual_chunks(releases, grant, plan, tally)
    releases.check_live(grant)
    yield pb.DataChunk(
        summary=pb.ReleaseSummary(
            members_released=tally.members,
            cells_suppressed=tally.suppressed,
            cells_released=tally.released,
            decision_id=plan.decision_id,
        )
    )


def _individual_chunks(
    releases: Releases, grant: Any, plan: Release, tally: release.Tally
) -> Iterator[pb.DataChunk]:
    for ds in plan.datasets:
        for one in releases.individual(plan, ds, tally):
            releases.check_live(grant)
            yield pb.DataChunk(
                individual=pb.IndividualSeries(
                    dataset=one["dataset"],
                    member_ref=one["member_ref"],
                    period_start_unix=one["periods"].tolist(),
                    kwh=one["kwh"].tolist(),
                )
            )


def _header(plan: Release) -> pb.ReleaseHeader:
    ask = plan.ask
    return pb.ReleaseHeader(
        grant_id=plan.recipient.grant_id,
        request_id=plan.recipient.request_id,
        release_id=plan.release_id,
        granularity=cv.granularity_to_proto(ask.granularity),
        period=common_pb2.Period(start_unix=ask.period[0], end_unix=ask.period[1]),
        datasets=ask.datasets,
        fields=ask.fields,
        purpose=ask.purpose,
        flow=flow_to_proto(Flow(ask.flow)),
        min_group_size=plan.min_group_size,
    )


def _aggregate(series: Cells) -> pb.AggregateSeries:
    return pb.AggregateSeries(
        dataset=series.dataset,
        period_start_unix=series.periods.tolist(),
        kwh=series.kwh.tolist() if series.kwh is not None else [],
        member_count=series.member_count.tolist() if series.member_count is not None else [],
    )


def _decision_key(row: tuple[str, DataRequestRecord]) -> tuple[str, str, str]:
    """A decision's place in ListDecisions' order: when, by whom, on which request."""
    by, r = row
    at = r.review.decided_at if by == "board" and r.review is not None else r.submitted_at
    return at.isoformat(), by, r.request_id


def list_data_access(
    governance: GovernanceStore, policy: PolicyHolder, member_id: str, page: Page
) -> member_pb2.ListDataAccessResponse:
    """MemberService.ListDataAccess: each release of the member's data, newest first."""
    labels = {code: p["label"] for code, p in policy.data["purposes"].items()}
    (after,) = page.after or (0,)
    found = governance.access_for_member(member_id, page.fetch, after=after)
    entries, token = page.cut(found, lambda e: (e.key,))
    return member_pb2.ListDataAccessResponse(
        entries=[cv.access_to_proto(e, labels.get(e.purpose, e.purpose)) for e in entries],
        next_page_token=token,
    )


@dataclass(frozen=True)
class GovernanceParts:
    """The governance features of one node, each built once from the collaborators it uses."""

    organisations: Organisations
    requests: Requests
    releases: Releases


def parts(node: Node) -> GovernanceParts:
    """The node's governance features, built from its fields (open_node makes every one used here)."""
    organisations = Organisations(node.governance, node.decision_log, node.policy, node.credentials)
    requests = Requests(
        node.governance, node.decision_log, node.policy, organisations, node.store, node.consent,
        node.keys, node.node_id,
    )  # fmt: skip
    releases = Releases(node.governance, node.store, node.policy, node.decision_log, node.pipeline)
    return GovernanceParts(organisations, requests, releases)


def add_services(server: grpc.aio.Server, node: Node) -> list[str]:
    """Register the governance servicers; returns their full service names."""
    built = parts(node)
    governance = GovernanceService(
        store=node.store, governance=node.governance, policy=node.policy, decision_log=node.decision_log,
        organisations=built.organisations, requests=built.requests, settings=node.settings.node,
    )  # fmt: skip
    review = ReviewService(
        store=node.store, governance=node.governance, policy=node.policy, decision_log=node.decision_log,
        credentials=node.credentials, organisations=built.organisations, requests=built.requests,
    )  # fmt: skip
    data = DataService(credentials=node.credentials, releases=built.releases, settings=node.settings.node)
    pb_grpc.add_GovernanceServiceServicer_to_server(governance, server)
    pb_grpc.add_ReviewServiceServicer_to_server(review, server)
    pb_grpc.add_DataServiceServicer_to_server(data, server)
    return [
        pb.DESCRIPTOR.services_by_name[name].full_name
        for name in ("GovernanceService", "ReviewService", "DataService")
    ]


def authenticators(node: Node) -> dict[str, Authenticator]:
    """Organisations, the board, and grantees each authenticate their own way."""
    return {
        "/coopfed.v1.GovernanceService/": node.credentials.authenticate_org,
        "/coopfed.v1.ReviewService/": node.credentials.authenticate_board,
        "/coopfed.v1.DataService/": lambda token: release.authenticate_grant(
            node.credentials, node.governance, token
        ),
    }
