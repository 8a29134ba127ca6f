"""`coopfed org|request|review|audit ...`: third parties, the board, and the decision-log audit."""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from coopfed.federation.keys import open_private
from coopfed.node.cli.common import bind, id_column
from coopfed.node.client import Credentials, bearer, channel
from coopfed.node.errors import UsageError
from coopfed.v1 import common_pb2
from coopfed.v1 import governance_pb2 as pb
from coopfed.v1 import governance_pb2_grpc as pb_grpc

DEFAULT_ORG = Path("org.json")


def add_commands(groups: Any, console: Console) -> None:
    """Register the org, request, review and audit command groups."""
    from coopfed.node.cli import board as cli_board  # it builds on this module's helpers

    _org(groups.add_parser("org", help="a third party: register and read the catalogue"), console)
    _request(
        groups.add_parser("request", help="a third party: ask for data, follow requests, fetch data"), console
    )
    cli_board.add_review(
        groups.add_parser("review", help="the board: decide referred requests, verify, revoke"), console
    )
    cli_board.add_audit(groups.add_parser("audit", help="verify or export the node's decision log"), console)


# --- org ----------------------------------------------------------------------------------


def _org(parser: argparse.ArgumentParser, console: Console) -> None:
    parser.add_argument("--credentials", type=Path, default=DEFAULT_ORG, help="saved organisation token")
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    reg = commands.add_parser("register", help="register an organisation with a co-op's node")
    reg.add_argument("--node", default="127.0.0.1:50051", help="the node's host:port")
    reg.add_argument("--name", required=True)
    reg.add_argument("--type", required=True, help="e.g. university, council, charity, company")
    reg.add_argument("--registration-number", default="")
    reg.add_argument("--website", default="")
    reg.add_argument("--contact", default="", help="contact address for the co-op's board")
    reg.add_argument("--commit", action="append", default=[], help="a commitment, e.g. not_for_profit")
    reg.add_argument("--description", default="")
    commands.add_parser("show", help="your organisation and its assessment")
    for name, text in (("datasets", "the co-op's dataset catalogue"), ("purposes", "the purpose vocabulary")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--node", default="", help="the node's host:port (default: from credentials)")
    bind(
        commands,
        {"register": _org_register, "show": _org_show, "datasets": _datasets, "purposes": _purposes},
        console,
    )


def _governance(node: str) -> pb_grpc.GovernanceServiceStub:
    return pb_grpc.GovernanceServiceStub(channel(node))


def _org_session(args: argparse.Namespace) -> tuple[pb_grpc.GovernanceServiceStub, tuple, Credentials]:
    creds = Credentials.load(args.credentials, "run `coopfed org register` first")
    return _governance(creds.node), bearer(creds.token), creds


def _org_register(args: argparse.Namespace, console: Console) -> int:
    reply = _governance(args.node).RegisterOrganisation(
        pb.RegisterOrganisationRequest(
            name=args.name, type=args.type, registration_number=args.registration_number,
            website=args.website, contact=args.contact, commitments=args.commit, description=args.description,
        )
    )  # fmt: skip
    Credentials(args.node, reply.organisation_id, reply.token).save(args.credentials)
    console.print(f"registered as [bold]{reply.organisation_id}[/bold]; token saved to {args.credentials}")
    print_assessment(console, reply.organisation.assessment)
    return 0


def _org_show(args: argparse.Namespace, console: Console) -> int:
    stub, md, _ = _org_session(args)
    org = stub.GetOrganisation(pb.GetOrganisationRequest(), metadata=md)
    console.print(f"[bold]{org.name}[/bold] ({org.organisation_id}), {org.type}, verified: {org.verified}")
    print_assessment(console, org.assessment)
    return 0


def print_assessment(console: Console, a: pb.Assessment) -> None:
    console.print(f"assessment: {a.score}/100, valid until {a.expires_at.ToDatetime(UTC):%Y-%m-%d}")
    for reason in a.reasons:
        console.print(f"  - {reason}", highlight=False, soft_wrap=True)


def _public_node(args: argparse.Namespace) -> str:
    return args.node or Credentials.load(args.credentials, "give --node or register first").node


def _datasets(args: argparse.Namespace, console: Console) -> int:
    reply = _governance(_public_node(args)).ListDatasets(pb.ListDatasetsRequest())
    table = Table(
        "dataset", "title", "granularities", "fields", "period held", "sensitivity", title=reply.publisher
    )
    for d in reply.datasets:
        period = _period_text(d.period_available) if d.HasField("period_available") else "none yet"
        grans = ", ".join(
            pb.Granularity.Name(g).removeprefix("GRANULARITY_").lower() for g in d.granularities
        )
        table.add_row(d.id, d.title, grans, ", ".join(f.name for f in d.fields), period, d.sensitivity)
    console.print(table)
    return 0


def _purposes(args: argparse.Namespace, console: Console) -> int:
    reply = _governance(_public_node(args)).ListPurposes(pb.ListPurposesRequest())
    table = Table("code", "label", "among the co-op's aims", "never served")
    for p in reply.purposes:
        table.add_row(p.code, p.label, "yes" if p.among_aims else "", "yes" if p.prohibited else "")
    console.print(table)
    return 0


# --- request ------------------------------------------------------------------------------


def _request(parser: argparse.ArgumentParser, console: Console) -> None:
    parser.add_argument("--credentials", type=Path, default=DEFAULT_ORG, help="saved organisation token")
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    submit = commands.add_parser("submit", help="ask for data; the policy decides at once")
    submit.add_argument("--dataset", action="append", required=True, help="a dataset id (repeatable)")
    submit.add_argument("--field", action="append", default=[], help="a field name (repeatable)")
    submit.add_argument("--granularity", choices=["aggregate", "individual"], default="aggregate")
    submit.add_argument(
        "--from", dest="start", required=True, type=date.fromisoformat, help="first day (UTC)"
    )
    submit.add_argument("--to", dest="end", required=True, type=date.fromisoformat, help="day after the last")
    submit.add_argument("--purpose", required=True, help="a purpose code, e.g. dpv:AcademicResearch")
    submit.add_argument("--describe", default="", help="the purpose in your own words")
    submit.add_argument("--commit", action="append", default=[], help="e.g. results_shared_with_members")
    commands.add_parser("list", help="your requests")
    show = commands.add_parser("show", help="one request: decisions, reasons, scores, grant")
    show.add_argument("request_id")
    commands.add_parser("grants", help="your grants, with revocations and their reasons")
    fetch = commands.add_parser("fetch", help="stream the data a grant allows into a CSV file")
    fetch.add_argument("grant_id")
    fetch.add_argument("--out", type=Path, required=True)
    fetch.add_argument("--dataset", action="append", default=[])
    actions = {"submit": _submit, "list": _list, "show": _show, "grants": _grants, "fetch": _fetch}
    bind(commands, actions, console)


def _unix(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _period_text(p: common_pb2.Period) -> str:
    start, end = (datetime.fromtimestamp(t, UTC) for t in (p.start_unix, p.end_unix))
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"


def _submit(args: argparse.Namespace, console: Console) -> int:
    stub, md, _ = _org_session(args)
    request = pb.DataRequest(
        datasets=args.dataset, fields=args.field or ["kwh"],
        granularity=pb.Granularity.Value("GRANULARITY_" + args.granularity.upper()),
        period=common_pb2.Period(start_unix=_unix(args.start), end_unix=_unix(args.end)),
        flow=common_pb2.FLOW_THIRD_PARTY, purpose=args.purpose, purpose_description=args.describe,
        commitments=args.commit,
    )  # fmt: skip
    print_status(console, stub.SubmitDataRequest(request, metadata=md))
    return 0


def outcome_name(value: int) -> str:
    return pb.Outcome.Name(value).removeprefix("OUTCOME_").lower()


def print_status(console: Console, s: pb.DataRequestStatus) -> None:
    state = pb.RequestState.Name(s.state).removeprefix("REQUEST_STATE_").lower().replace("_", " ")
    d = s.policy_decision
    console.print(f"request [bold]{s.request_id}[/bold]: {state}")
    console.print(f"policy: {outcome_name(d.outcome)} (score {d.score}/100, decision {d.decision_id})")
    for reason in d.reasons:
        console.print(f"  - {reason}", highlight=False, soft_wrap=True)
    for stage in d.stages:
        console.print(f"  {stage.stage}: {stage.score}/100", highlight=False, soft_wrap=True)
        for dim in stage.dimensions:
            console.print(
                f"    {dim.name} {dim.score}/100 (weight {dim.weight}): {dim.reason}", highlight=False
            )
    if s.HasField("review"):
        console.print(
            f"board: {outcome_name(s.review.outcome)}: {s.review.reasons[0]}", highlight=False, soft_wrap=True
        )
    if s.HasField("grant"):
        g = s.grant
        console.print(f"grant [bold]{g.grant_id}[/bold] until {g.expires_at.ToDatetime(UTC):%Y-%m-%d}")


def _list(args: argparse.Namespace, console: Console) -> int:
    stub, md, _ = _org_session(args)
    table = Table(id_column("request"), "submitted", "datasets", "state", "policy", id_column("grant"))
    for s in stub.ListMyRequests(pb.ListMyRequestsRequest(), metadata=md).requests:
        table.add_row(
            s.request_id, f"{s.submitted_at.ToDatetime(UTC):%Y-%m-%d %H:%M}", ", ".join(s.request.datasets),
            pb.RequestState.Name(s.state).removeprefix("REQUEST_STATE_").lower(),
            outcome_name(s.policy_decision.outcome), s.grant.grant_id,
        )  # fmt: skip
    console.print(table)
    return 0


def _show(args: argparse.Namespace, console: Console) -> int:
    stub, md, _ = _org_session(args)
    print_status(console, stub.GetDecision(pb.GetDecisionRequest(request_id=args.request_id), metadata=md))
    return 0


def _grants(args: argparse.Namespace, console: Console) -> int:
    stub, md, _ = _org_session(args)
    table = Table(id_column("grant"), id_column("request"), "datasets", "expires", "revoked")
    for g in stub.ListMyGrants(pb.ListMyGrantsRequest(), metadata=md).grants:
        revoked = f"yes: {g.revocation_reason}" if g.revoked else ""
        expires = f"{g.expires_at.ToDatetime(UTC):%Y-%m-%d}"
        table.add_row(g.grant_id, g.request_id, ", ".join(g.scope.datasets), expires, revoked)
    console.print(table)
    return 0


def _fetch(args: argparse.Namespace, console: Console) -> int:
    stub, md, creds = _org_session(args)
    grants = {g.grant_id: g for g in stub.ListMyGrants(pb.ListMyGrantsRequest(), metadata=md).grants}
    if args.grant_id not in grants:
        raise UsageError(
            f"no grant {args.grant_id} among yours (see `coopfed request grants`)", code="cli.grant"
        )
    data = pb_grpc.DataServiceStub(channel(creds.node))
    chunks = data.FetchData(
        pb.FetchDataRequest(datasets=args.dataset), metadata=bearer(grants[args.grant_id].token)
    )
    rows = write_release_csv(chunks, args.out)
    console.print(f"wrote {rows} rows to {args.out}")
    return 0


def write_release_csv(chunks: Iterable[pb.DataChunk], out: Path) -> int:
    """Write a FetchData stream as CSV: dataset, member_ref, period_start (UTC), kwh, member_count."""
    rows = 0
    with open_private(out, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dataset", "member_ref", "period_start", "kwh", "member_count"])
        for chunk in chunks:
            kind = chunk.WhichOneof("content")
            if kind not in ("aggregate", "individual"):
                continue
            series = getattr(chunk, kind)
            ref = series.member_ref if kind == "individual" else ""
            counts = list(series.member_count) if kind == "aggregate" else []
            for i, period in enumerate(series.period_start_unix):
                when = datetime.fromtimestamp(period, UTC).isoformat()
                kwh = series.kwh[i] if series.kwh else ""
                writer.writerow([series.dataset, ref, when, kwh, counts[i] if counts else ""])
                rows += 1
    return rows
