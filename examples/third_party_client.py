"""An example third party: register with a co-op's node, ask for data, and stream what was granted.

Run against a node (see the README's "Governance" section):

    python examples/third_party_client.py --node 127.0.0.1:50051 --from 2024-01-01 --to 2024-02-01

It uses only the generated gRPC stubs (`coopfed.v1`) and grpcio.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, date, datetime

import grpc

from coopfed.v1 import common_pb2
from coopfed.v1 import governance_pb2 as pb
from coopfed.v1 import governance_pb2_grpc as pb_grpc


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def unix(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def register(governance: pb_grpc.GovernanceServiceStub) -> tuple[str, str]:
    reply = governance.RegisterOrganisation(
        pb.RegisterOrganisationRequest(
            name="Example University, Energy Systems Group",
            type="university",
            website="https://energy.example.ac.uk",
            contact="data-requests@energy.example.ac.uk",
            commitments=["not_for_profit", "open_publication", "ethics_approval"],
            description="Researches how neighbourhoods can use more of the energy they generate.",
        )
    )
    print(f"registered as {reply.organisation_id}; assessment {reply.organisation.assessment.score}/100")
    return reply.organisation_id, reply.token


def ask(
    governance: pb_grpc.GovernanceServiceStub, token: str, start: date, end: date
) -> pb.DataRequestStatus:
    status = governance.SubmitDataRequest(
        pb.DataRequest(
            datasets=["demand", "generation"],
            fields=["kwh", "member_count"],
            granularity=pb.GRANULARITY_AGGREGATE,
            period=common_pb2.Period(start_unix=unix(start), end_unix=unix(end)),
            flow=common_pb2.FLOW_THIRD_PARTY,
            purpose="dpv:AcademicResearch",
            purpose_description="How evening peaks in demand line up with local solar generation.",
            commitments=["results_shared_with_members"],
        ),
        metadata=bearer(token),
    )
    decision = status.policy_decision
    print(f"request {status.request_id}: {pb.Outcome.Name(decision.outcome)} (score {decision.score}/100)")
    for reason in decision.reasons:
        print(f"  - {reason}")
    return status


def wait_for_board(
    governance: pb_grpc.GovernanceServiceStub, token: str, request_id: str, timeout: float
) -> pb.DataRequestStatus:
    """A referred request waits for the co-op's board; ask again now and then."""
    deadline = time.monotonic() + timeout
    while True:
        status = governance.GetDecision(pb.GetDecisionRequest(request_id=request_id), metadata=bearer(token))
        if status.state != pb.REQUEST_STATE_AWAITING_REVIEW or time.monotonic() > deadline:
            return status
        time.sleep(5)


def fetch(data: pb_grpc.DataServiceStub, grant: str, token: str) -> None:
    """Stream the release: a header, one series per dataset, a summary. The grant is presented
    with the organisation's own token: a grant is bound to the organisation it was issued to."""
    metadata = (("authorization", f"Bearer {grant}"), ("coopfed-organisation-token", token))
    for chunk in data.FetchData(pb.FetchDataRequest(), metadata=metadata):
        kind = chunk.WhichOneof("content")
        if kind == "header":
            header = chunk.header
            print(f"release {header.release_id}: cells under {header.min_group_size} members are withheld")
        elif kind == "aggregate":
            series = chunk.aggregate
            total = sum(series.kwh)
            print(f"{series.dataset}: {len(series.period_start_unix)} half-hours, {total:.1f} kWh in all")
        elif kind == "summary":
            s = chunk.summary
            print(f"{s.members_released} members released; {s.cells_suppressed} cells withheld")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", default="127.0.0.1:50051")
    parser.add_argument("--from", dest="start", type=date.fromisoformat, default=date(2024, 1, 1))
    parser.add_argument("--to", dest="end", type=date.fromisoformat, default=date(2024, 2, 1))
    parser.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the board on a referral")
    args = parser.parse_args()
    with grpc.insecure_channel(args.node) as channel:  # use grpc.secure_channel for a node off loopback
        governance = pb_grpc.GovernanceServiceStub(channel)
        catalogue = governance.ListDatasets(pb.ListDatasetsRequest())
        print(f"{catalogue.publisher} offers: {', '.join(d.id for d in catalogue.datasets)}")
        _, token = register(governance)
        status = ask(governance, token, args.start, args.end)
        if status.state == pb.REQUEST_STATE_AWAITING_REVIEW and args.wait:
            status = wait_for_board(governance, token, status.request_id, args.wait)
        if not status.HasField("grant"):
            print("no grant: nothing to fetch")
            return 1
        fetch(pb_grpc.DataServiceStub(channel), status.grant.token, token)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
