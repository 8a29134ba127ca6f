"""The demo's third parties: three organisations ask a co-op for data, the policy and the board decide.

A university (verified by the board), a council (new, so referred to the board) and a company
(asking for marketing) each submit a request over gRPC; the co-op's governance policy decides,
a board member decides the referral through `ReviewService`, the university streams its grant
through `DataService.FetchData`, and a member reads the release in their access log. Nothing here
decides an outcome: the policy in the co-op's folder does, and the demo reports what it said.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import arrow
import grpc
from rich.console import Console

from coopfed.node.cli.governance import outcome_name, print_status, write_release_csv
from coopfed.node.client import bearer, grant_bearer
from coopfed.node.credentials import issue_board_token
from coopfed.node.runtime import Node
from coopfed.v1 import common_pb2, member_pb2, member_pb2_grpc
from coopfed.v1 import governance_pb2 as pb
from coopfed.v1 import governance_pb2_grpc as pb_grpc

LOCAL_TZ = "Europe/London"
BOARD_MEMBER = "ada"


@dataclass(frozen=True)
class Asker:
    """An organisation of the demo and the request it makes."""

    name: str
    type: str
    commitments: tuple[str, ...]
    datasets: tuple[str, ...]
    purpose: str
    description: str
    verified_by_board: bool = False


ASKERS = (
    Asker(
        "Northbridge University", "university", ("not_for_profit", "open_publication", "ethics_approval"),
        ("demand", "generation"), "dpv:AcademicResearch",
        "How evening peaks in demand line up with the neighbourhood's own generation.",
        verified_by_board=True,
    ),
    Asker(
        "Riverside Borough Council", "council", ("not_for_profit",), ("demand",), "dpv:PublicBenefit",
        "Planning where the borough's next community battery would relieve the grid most.",
    ),
    Asker(
        "Brightwatt Analytics Ltd", "company", (), ("demand",), "dpv:Marketing",
        "Finding households likely to buy a home battery, to target our adverts.",
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Decided:
    """How one organisation's request ended: the policy's outcome, and who made the final call."""

    policy: str
    final: str
    decided_by: str
    grant_id: str


@dataclass(frozen=True)
class ThirdPartyResult:
    decided: dict[str, Decided]
    rows_streamed: int
    member_access: tuple[member_pb2.DataAccess, ...]


def third_parties(
    node: Node, address: str, member_token: str, folder: Path, console: Console
) -> ThirdPartyResult:
    """Run the three requests against the node at `address` (blocking: run it in a thread)."""
    board = bearer(issue_board_token(node.node_id, node.keys, BOARD_MEMBER, 3600))
    with grpc.insecure_channel(address) as channel:
        gov = pb_grpc.GovernanceServiceStub(channel)
        review = pb_grpc.ReviewServiceStub(channel)
        period = _period_held(gov)
        decided: dict[str, Decided] = {}
        tokens: dict[str, tuple[str, str]] = {}
        for asker in ASKERS:
            console.print(f"\n[bold]{asker.name}[/bold] ({asker.type}) asks for {', '.join(asker.datasets)}")
            reply = gov.RegisterOrganisation(
                pb.RegisterOrganisationRequest(
                    name=asker.name, type=asker.type, commitments=asker.commitments,
                    description=asker.description,
                )
            )  # fmt: skip
            if asker.verified_by_board:
                review.VerifyOrganisation(
                    pb.VerifyOrganisationRequest(
                        organisation_id=reply.organisation_id, verified=True,
                        note="Registration and ethics approval checked by the board.",
                    ),
                    metadata=board,
                )  # fmt: skip
                console.print(f"  the board verified {asker.name} earlier")
            status = gov.SubmitDataRequest(_request(asker, period), metadata=bearer(reply.token))
            print_status(console, status)
            if status.state == pb.REQUEST_STATE_AWAITING_REVIEW:
                status = _board_decides(review, board, status, console)
            decided[asker.name] = _decided(status)
            if status.HasField("grant"):
                tokens[asker.name] = status.grant.token, reply.token  # the grant and its holder's token
        rows = _stream(pb_grpc.DataServiceStub(channel), tokens, folder, console)
        access = _access(member_pb2_grpc.MemberServiceStub(channel), member_token, console)
    return ThirdPartyResult(decided, rows, access)


def _period_held(gov: pb_grpc.GovernanceServiceStub) -> common_pb2.Period:
    """The period every dataset of the catalogue covers, as a third party reads it there."""
    held = [d.period_available for d in gov.ListDatasets(pb.ListDatasetsRequest()).datasets]
    return common_pb2.Period(
        start_unix=max(p.start_unix for p in held), end_unix=min(p.end_unix for p in held)
    )


def _request(asker: Asker, period: common_pb2.Period) -> pb.DataRequest:
    return pb.DataRequest(
        datasets=asker.datasets, fields=["kwh", "member_count"], granularity=pb.GRANULARITY_AGGREGATE,
        period=period, flow=common_pb2.FLOW_THIRD_PARTY, purpose=asker.purpose,
        purpose_description=asker.description, commitments=["results_shared_with_members"],
    )  # fmt: skip


def _board_decides(
    review: pb_grpc.ReviewServiceStub, board: tuple, status: pb.DataRequestStatus, console: Console
) -> pb.DataRequestStatus:
    """Board member Ada reads the referral (as `coopfed review list` shows it) and approves it."""
    waiting = len(review.ListReferred(pb.ListReferredRequest(), metadata=board).requests)
    console.print(f"  {waiting} request(s) await the board; board member {BOARD_MEMBER} approves this one:")
    decided = review.RecordDecision(
        pb.RecordDecisionRequest(
            request_id=status.request_id, outcome=pb.OUTCOME_APPROVE,
            reason="A public planning study with a clear benefit to members; approved for this request.",
        ),
        metadata=board,
    )  # fmt: skip
    print_status(console, decided)
    return decided


def _decided(status: pb.DataRequestStatus) -> Decided:
    policy = outcome_name(status.policy_decision.outcome)
    if status.HasField("review"):
        return Decided(policy, outcome_name(status.review.outcome), "board", status.grant.grant_id)
    return Decided(policy, policy, "policy", status.grant.grant_id)


def _stream(
    data: pb_grpc.DataServiceStub, tokens: dict[str, tuple[str, str]], folder: Path, console: Console
) -> int:
    """The organisation the policy approved streams what its grant allows into a CSV file."""
    name = ASKERS[0].name
    if name not in tokens:
        console.print(f"\n{name} holds no grant: nothing to stream")
        return 0
    out = folder / "northbridge-release.csv"
    rows = write_release_csv(data.FetchData(pb.FetchDataRequest(), metadata=grant_bearer(*tokens[name])), out)
    console.print(f"\n{name} streamed its grant: {rows:,} half-hour totals saved to {out}")
    return rows


def _access(stub: member_pb2_grpc.MemberServiceStub, token: str, console: Console) -> tuple:
    """What a member of the co-op reads in their access log (`coopfed member access`)."""
    entries = tuple(stub.ListDataAccess(member_pb2.ListDataAccessRequest(), metadata=bearer(token)).entries)
    console.print("a member opens their access log:")
    for e in entries:
        console.print(f"  {access_line(e)}", highlight=False, soft_wrap=True)
    if not entries:
        console.print("  no one outside the co-op has received your data")
    return entries


def access_line(e: member_pb2.DataAccess) -> str:
    """One release of a member's data, in the words and time zone the member reads."""
    shared = "within co-op totals, never on its own" if e.granularity == "aggregate" else "as your own"
    return (
        f"{_local(e.at.seconds, 'ddd D MMM HH:mm')}: {e.organisation_name} received your {e.dataset} "
        f"readings ({shared}) from {_local(e.period.start_unix)} to {_local(e.period.end_unix)}, "
        f"for {e.purpose_label or e.purpose}"
    )


def _local(unix: int, fmt: str = "D MMM YYYY") -> str:
    return arrow.get(unix).to(LOCAL_TZ).format(fmt)
