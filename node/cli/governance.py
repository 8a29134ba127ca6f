"""`coopfed org|request|review|audit ...`: third parties, the board, and the decision-log audit."""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from coopfed.federation.keys import open_private
from coopfed.node.cli.common import (
    add_credentials_option,
    add_period_options,
    bind,
    period_of,
    period_text,
    public_channel,
    saved_credentials,
)
from coopfed.node.cli.output import Col, add_json_option, cell, print_json, show
from coopfed.node.client import Credentials, add_node_options, bearer, channel, every_page, grant_bearer
from coopfed.node.errors import UsageError
from coopfed.node.localtime import local_day
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
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    reg = commands.add_parser("register", help="register an organisation with a co-op's node")
    add_node_options(reg)
    reg.add_argument("--name", required=True)
    reg.add_argument("--type", required=True, help="e.g. university, council, charity, company")
    reg.add_argument("--registration-number", default="")
    reg.add_argument("--website", default="")
    reg.add_argument("--contact", default="", help="contact address for the co-op's board")
    reg.add_argument("--commit", action="append", default=[], help="a commitment, e.g. not_for_profit")
    reg.add_argument("--description", default="")
    add_credentials_option(reg, DEFAULT_ORG, saves=True)
    show = commands.add_parser("show", help="your organisation and its assessment")
    for name, text in (("datasets", "the co-op's dataset catalogue"), ("purposes", "the purpose vocabulary")):
        sub = commands.add_parser(name, help=text)
        add_node_options(sub, default="")  # default: the node of the saved credential
    for sub in (show, commands.choices["datasets"], commands.choices["purposes"]):
        add_credentials_option(sub, DEFAULT_ORG)
        add_json_option(sub)
    bind(
        commands,
        {"register": _org_register, "show": _org_show, "datasets": _datasets, "purposes": _purposes},
        console,
    )


def _org_session(args: argparse.Namespace) -> tuple[pb_grpc.GovernanceServiceStub, tuple, Credentials]:
    creds = Credentials.load(args.credentials, "run `coopfed org register` first")
    return pb_grpc.GovernanceServiceStub(creds.channel()), bearer(creds.token), creds


def _org_register(args: argparse.Namespace, console: Console) -> int:
    if args.credentials.exists() and not args.force:  # refuse before registering an orphan
        saved_credentials(args, args.node, "", "")
    stub = pb_grpc.GovernanceServiceStub(channel(args.node, ca=args.ca, fingerprint=args.fingerprint))
    reply = stub.RegisterOrganisation(
        pb.RegisterOrganisationRequest(
            name=args.name, type=args.type, registration_number=args.registration_number,
            website=args.website, contact=args.contact, commitments=args.commit, description=args.description,
        )
    )  # fmt: skip
    saved_credentials(args, args.node, reply.organisation_id, reply.token)
    console.print(f"registered as {reply.organisation_id}; token saved to {args.credentials}", markup=False)
    print_assessment(console, reply.organisation.assessment)
    return 0


def _org_show(args: argparse.Namespace, console: Console) -> int:
    stub, md, _ = _org_session(args)
    org = stub.GetOrganisation(pb.GetOrganisationRequest(), metadata=md)
    if args.json:
        print_json(organisation_record(org))
        return 0
    console.print(
        f"{org.name} ({org.organisation_id}), {org.type}, verified: {cell(org.verified)}", markup=False
    )
    print_assessment(console, org.assessment)
    return 0


def organisation_record(o: pb.Organisation) -> dict[str, Any]:
    a = o.assessment
    return {
        "organisation_id": o.organisation_id, "name": o.name, "type": o.type, "verified": o.verified,
        "contact": o.contact, "score": a.score, "assessment_expires": a.expires_at.ToDatetime(UTC),
        "reasons": list(a.reasons),
    }  # fmt: skip


def print_assessment(console: Console, a: pb.Assessment) -> None:
    console.print(f"assessment: {a.score}/100, valid until {local_day(a.expires_at.ToDatetime(UTC))}")
    for reason in a.reasons:
        console.print(f"  - {reason}", markup=False)


def _datasets(args: argparse.Namespace, console: Console) -> int:
    stub = pb_grpc.GovernanceServiceStub(public_channel(args, "give --node or register first"))
    datasets, reply = every_page(stub.ListDatasets, pb.ListDatasetsRequest(), "datasets")
    records = [
        {
            "dataset": d.id, "title": d.title,
            "granularities": [granularity_name(g) for g in d.granularities],
            "fields": [f.name for f in d.fields], "sensitivity": d.sensitivity,
            "period_held": period_text(d.period_available.start_unix, d.period_available.end_unix)
            if d.HasField("period_available") else "none yet",
        }
        for d in datasets
    ]  # fmt: skip
    columns = [
        Col("dataset", "dataset", True),
        Col("title", "title"),
        Col("granularities", "granularities"),
        Col("fields", "fields"),
        Col("period_held", "period held"),
        Col("sensitivity", "sensitivity"),
    ]
    show(console, records, columns, as_json=args.json, empty="no datasets", title=reply.publisher)
    return 0


def _purposes(args: argparse.Namespace, console: Console) -> int:
    stub = pb_grpc.GovernanceServiceStub(public_channel(args, "give --node or register first"))
    records = [
        {"code": p.code, "label": p.label, "among_aims": p.among_aims, "prohibited": p.prohibited}
        for p in every_page(stub.ListPurposes, pb.ListPurposesRequest(), "purposes")[0]
    ]
    columns = [
        Col("code", "code", True),
        Col("label", "label"),
        Col("among_aims", "among the co-op's aims"),
        Col("prohibited", "never served"),
    ]
    show(console, records, columns, as_json=args.json, empty="no purposes")
    return 0


# --- request ------------------------------------------------------------------------------


def _request(parser: argparse.ArgumentParser, console: Console) -> None:
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    submit = commands.add_parser("submit", help="ask for data; the policy decides at once")
    submit.add_argument("--dataset", action="append", required=True, help="a dataset id (repeatable)")
    submit.add_argument("--field", action="append", default=[], help="a field name (repeatable)")
    submit.add_argument("--granularity", choices=["aggregate", "individual"], default="aggregate")
    add_period_options(submit)
    submit.add_argument("--purpose", required=True, help="a purpose code, e.g. dpv:AcademicResearch")
    submit.add_argument("--describe", default="", help="the purpose in your own words")
    submit.add_argument("--commit", action="append", default=[], help="e.g. results_shared_with_members")
    listing = commands.add_parser("list", help="your requests")
    add_json_option(listing)
    one = commands.add_parser("show", help="one request: decisions, reasons, scores, grant")
    one.add_argument("request_id")
    add_json_option(one)
    add_json_option(commands.add_parser("grants", help="your grants, with revocations and their reasons"))
    fetch = commands.add_parser("fetch", help="stream the data a grant allows into a CSV file")
    fetch.add_argument("grant_id")
    fetch.add_argument("--out", type=Path, required=True)
    fetch.add_argument("--dataset", action="append", default=[], help="only this dataset (repeatable)")
    for sub in commands.choices.values():
        add_credentials_option(sub, DEFAULT_ORG)
    actions = {"submit": _submit, "list": _list, "show": _show, "grants": _grants, "fetch": _fetch}
    bind(commands, actions, console)


def _submit(args: argparse.Namespace, console: Console) -> int:
    start, end = period_of(args)
    stub, md, _ = _org_session(args)
    request = pb.DataRequest(
        datasets=args.dataset, fields=args.field or ["kwh"],
        granularity=pb.Granularity.Value("GRANULARITY_" + args.granularity.upper()),
        period=common_pb2.Period(start_unix=start, end_unix=end),
        flow=common_pb2.FLOW_THIRD_PARTY, purpose=args.purpose, purpose_description=args.describe,
        commitments=args.commit,
    )  # fmt: skip
    status = stub.SubmitDataRequest(request, metadata=md)
    print_status(console, status)
    return 1 if status.state == pb.REQUEST_STATE_REJECTED else 0  # refused: exit 1


def outcome_name(value: int) -> str:
    return pb.Outcome.Name(pb.Outcome.ValueType(value)).removeprefix("OUTCOME_").lower()


def state_name(value: int) -> str:
    return (
        pb.RequestState.Name(pb.RequestState.ValueType(value))
        .removeprefix("REQUEST_STATE_")
        .lower()
        .replace("_", " ")
    )


def granularity_name(value: int) -> str:
    return pb.Granularity.Name(pb.Granularity.ValueType(value)).removeprefix("GRANULARITY_").lower()


def request_record(s: pb.DataRequestStatus) -> dict[str, Any]:
    """A request as people read it: who asks, for what, over which days, why, and where it stands."""
    r = s.request
    return {
        "request_id": s.request_id, "organisation_id": s.organisation_id,
        "submitted": s.submitted_at.ToDatetime(UTC), "datasets": list(r.datasets), "fields": list(r.fields),
        "granularity": granularity_name(r.granularity),
        "period": period_text(r.period.start_unix, r.period.end_unix),
        "purpose": r.purpose, "description": r.purpose_description, "commitments": list(r.commitments),
        "state": state_name(s.state), "policy": outcome_name(s.policy_decision.outcome),
        "score": s.policy_decision.score, "grant_id": s.grant.grant_id,
    }  # fmt: skip


def print_status(console: Console, s: pb.DataRequestStatus) -> None:
    d = s.policy_decision
    console.print(f"request {s.request_id}: {state_name(s.state)}", markup=False)
    console.print(f"policy: {outcome_name(d.outcome)} (score {d.score}/100, decision {d.decision_id})")
    for reason in d.reasons:
        console.print(f"  - {reason}", markup=False)
    for stage in d.stages:
        console.print(f"  {stage.stage}: {stage.score}/100", markup=False)
        for dim in stage.dimensions:
            console.print(f"    {dim.name} {dim.score}/100 (weight {dim.weight}): {dim.reason}", markup=False)
    if s.HasField("review"):
        console.print(f"board: {outcome_name(s.review.outcome)}: {s.review.reasons[0]}", markup=False)
    if s.HasField("grant"):
        g = s.grant
        console.print(f"grant {g.grant_id} until {local_day(g.expires_at.ToDatetime(UTC))}", markup=False)


def _list(args: argparse.Namespace, console: Console) -> int:
    stub, md, _ = _org_session(args)
    found = every_page(stub.ListMyRequests, pb.ListMyRequestsRequest(), "requests", metadata=md)[0]
    records = [request_record(s) for s in found]
    columns = [
        Col("request_id", "request", True),
        Col("submitted", "submitted"),
        Col("datasets", "datasets"),
        Col("period", "period"),
        Col("state", "state"),
        Col("policy", "policy"),
        Col("grant_id", "grant", True),
    ]
    show(console, records, columns, as_json=args.json, empty="no requests yet")
    return 0


def _show(args: argparse.Namespace, console: Console) -> int:
    stub, md, _ = _org_session(args)
    status = stub.GetDecision(pb.GetDecisionRequest(request_id=args.request_id), metadata=md)
    if args.json:
        print_json(request_record(status) | {"reasons": list(status.policy_decision.reasons)})
        return 0
    print_status(console, status)
    return 0


def grant_record(g: pb.Grant) -> dict[str, Any]:
    return {
        "grant_id": g.grant_id, "request_id": g.request_id, "datasets": list(g.scope.datasets),
        "period": period_text(g.scope.period.start_unix, g.scope.period.end_unix),
        "expires": g.expires_at.ToDatetime(UTC), "revoked": g.revoked,
        "revoked_at": g.revoked_at.ToDatetime(UTC) if g.HasField("revoked_at") else None,
        "revocation_reason": g.revocation_reason,
        "status": f"revoked: {g.revocation_reason}" if g.revoked else "valid",
    }  # fmt: skip


def _grants(args: argparse.Namespace, console: Console) -> int:
    stub, md, _ = _org_session(args)
    found = every_page(stub.ListMyGrants, pb.ListMyGrantsRequest(), "grants", metadata=md)[0]
    records = [grant_record(g) for g in found]
    columns = [
        Col("grant_id", "grant", True),
        Col("request_id", "request", True),
        Col("datasets", "datasets"),
        Col("period", "period"),
        Col("expires", "expires"),
        Col("status", "status"),
    ]
    show(console, records, columns, as_json=args.json, empty="no grants yet")
    return 0


def _fetch(args: argparse.Namespace, console: Console) -> int:
    stub, md, creds = _org_session(args)
    found = every_page(stub.ListMyGrants, pb.ListMyGrantsRequest(), "grants", metadata=md)[0]
    grants = {g.grant_id: g for g in found}
    if args.grant_id not in grants:
        raise UsageError(
            f"no grant {args.grant_id} among yours (see `coopfed request grants`)", code="cli.grant"
        )
    data = pb_grpc.DataServiceStub(creds.channel())
    chunks = data.FetchData(
        pb.FetchDataRequest(datasets=args.dataset),
        metadata=grant_bearer(grants[args.grant_id].token, creds.token),
    )
    rows = write_release_csv(chunks, args.out)
    console.print(f"wrote {rows} rows to {args.out}", markup=False)
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
