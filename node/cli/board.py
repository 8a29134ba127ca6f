"""`coopfed review|audit ...`: the board's commands, and verifying or exporting the decision log."""

from __future__ import annotations

import argparse
from datetime import UTC
from pathlib import Path
from typing import Any

from rich.console import Console

from coopfed.federation.keys import open_private
from coopfed.node.cli.common import (
    add_config_option,
    add_credentials_option,
    bind,
    node_settings,
    saved_credentials,
)
from coopfed.node.cli.governance import (
    organisation_record,
    outcome_name,
    print_assessment,
    print_status,
    request_record,
)
from coopfed.node.cli.output import Col, add_json_option, cell, print_json, show
from coopfed.node.client import Credentials, add_node_options, bearer, every_page
from coopfed.node.errors import UsageError
from coopfed.node.localtime import local_time
from coopfed.v1 import governance_pb2 as pb
from coopfed.v1 import governance_pb2_grpc as pb_grpc

DEFAULT_BOARD = Path("board.json")


# --- review (the board) -------------------------------------------------------------------


def add_review(parser: argparse.ArgumentParser, console: Console) -> None:
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    token = commands.add_parser("token", help="make a board token (on the node's machine: needs its keys)")
    add_config_option(token)
    token.add_argument("--name", required=True, help="the board member's name for the record")
    token.add_argument(
        "--hours",
        type=int,
        default=0,
        help="how long the token is valid (default and most: [node] board_token_ttl_hours)",
    )
    add_node_options(token, default="")  # default: the node's listen address
    add_credentials_option(token, DEFAULT_BOARD, saves=True)
    add_json_option(commands.add_parser("list", help="requests the policy referred to the board"))
    for verb in ("approve", "reject"):
        sub = commands.add_parser(verb, help=f"{verb} a referred request")
        sub.add_argument("request_id")
        sub.add_argument("--reason", required=True, help="why, in words the organisation will read")
    decisions = commands.add_parser("decisions", help="policy and board decisions, and agreement")
    decisions.add_argument("--by", choices=["policy", "board"], default="")
    decisions.add_argument("--outcome", choices=["approve", "reject", "refer"], default="")
    decisions.add_argument("--org", default="")
    decisions.add_argument("--limit", type=int, default=100, help="at most this many, newest first")
    add_json_option(decisions)
    add_json_option(commands.add_parser("orgs", help="registered organisations"))
    verify = commands.add_parser("verify", help="record that the board verified an organisation")
    verify.add_argument("organisation_id")
    verify.add_argument("--note", required=True, help="what the board checked")
    verify.add_argument("--withdraw", action="store_true", help="withdraw verification instead")
    revoke = commands.add_parser("revoke", help="revoke a grant before it expires")
    revoke.add_argument("grant_id")
    revoke.add_argument("--reason", required=True, help="why, in words the grantee will read")
    add_json_option(commands.add_parser("applicants", help="members waiting to be admitted"))
    for verb in ("admit", "refuse"):
        sub = commands.add_parser(verb, help=f"{verb} an applicant")
        sub.add_argument("member_id")
        sub.add_argument("--reason", required=True, help="what the board checked, or why not")
    invite = commands.add_parser(
        "invite", help="a single-use invitation code that admits whoever registers with it"
    )
    invite.add_argument("--expires", type=int, default=14, metavar="DAYS", help="days until it expires")
    add_json_option(invite)
    revoke_token = commands.add_parser("revoke-token", help="revoke a token, or every token of someone")
    which = revoke_token.add_mutually_exclusive_group(required=True)
    which.add_argument("jti", nargs="?", default="", help="the token's id (its jti)")
    which.add_argument("--member", default="", help="every token of this member issued until now")
    which.add_argument("--org", default="", help="every token of this organisation issued until now")
    which.add_argument("--board-member", default="", help="every token of this board member until now")
    revoke_token.add_argument("--reason", required=True, help="why, for the record")
    commands.add_parser("renew", help="swap your board token for a fresh one before it expires")
    for name, sub in commands.choices.items():
        if name != "token":
            add_credentials_option(sub, DEFAULT_BOARD)
    actions = {
        "token": _board_token, "list": _referred, "approve": _decide, "reject": _decide,
        "decisions": _decisions, "orgs": _orgs, "verify": _verify, "revoke": _revoke,
        "applicants": _applicants, "admit": _admission, "refuse": _admission, "invite": _invite,
        "revoke-token": _revoke_token, "renew": _renew,
    }  # fmt: skip
    bind(commands, actions, console)
    commands.choices["approve"].set_defaults(outcome=pb.OUTCOME_APPROVE)
    commands.choices["reject"].set_defaults(outcome=pb.OUTCOME_REJECT)
    commands.choices["admit"].set_defaults(admit=True)
    commands.choices["refuse"].set_defaults(admit=False)


def _board_token(args: argparse.Namespace, console: Console) -> int:
    from coopfed.federation.keys import KeyRing
    from coopfed.node.credentials import issue_board_token

    settings = node_settings(args.config)
    most = settings.node.board_token_ttl_hours
    hours = args.hours or most
    if not 1 <= hours <= most:
        raise UsageError(f"--hours: 1 to {most} ([node] board_token_ttl_hours)", code="cli.hours")
    if args.credentials.exists() and not args.force:  # refuse before making a token no one keeps
        saved_credentials(args, "", "", "")
    token = issue_board_token(settings.node.id, KeyRing.load(settings.keys_dir), args.name, hours * 3600)
    saved_credentials(args, args.node or settings.node.listen, f"board:{args.name}", token)
    console.print(
        f"board token for {args.name} saved to {args.credentials} (valid {hours} hours; "
        "`coopfed review renew` swaps it for a fresh one before then)",
        markup=False,
    )
    return 0


def _board(args: argparse.Namespace) -> tuple[pb_grpc.ReviewServiceStub, tuple]:
    creds = Credentials.load(args.credentials, "run `coopfed review token` on the node's machine")
    return pb_grpc.ReviewServiceStub(creds.channel()), bearer(creds.token)


def _referred(args: argparse.Namespace, console: Console) -> int:
    stub, md = _board(args)
    referred = every_page(stub.ListReferred, pb.ListReferredRequest(), "requests", metadata=md)[0]
    organisations = every_page(
        stub.ListOrganisations, pb.ListOrganisationsRequest(), "organisations", metadata=md
    )[0]
    orgs = {o.organisation_id: o for o in organisations}
    records = [_referred_record(s, orgs.get(s.organisation_id)) for s in referred]
    if args.json or not records:
        show(console, records, [], as_json=args.json, empty="no requests await review")
        return 0
    for s, r in zip(referred, records, strict=True):
        for line in (
            f"{r['organisation']} ({r['organisation_type']}, {s.organisation_id}) asks for "
            f"{cell(r['datasets'])} ({cell(r['fields'])}, {r['granularity']}), {r['period']}",
            f"purpose: {r['purpose']}: {r['description'] or 'no description'}",
            f"commitments: {cell(r['commitments'])}",
        ):
            console.print(line, markup=False)
        print_status(console, s)
        console.print()
    return 0


def _referred_record(s: pb.DataRequestStatus, org: pb.Organisation | None) -> dict[str, Any]:
    who = {"organisation": org.name, "organisation_type": org.type} if org else {}
    return request_record(s) | {"organisation": "", "organisation_type": ""} | who


def _decide(args: argparse.Namespace, console: Console) -> int:
    stub, md = _board(args)
    reply = stub.RecordDecision(
        pb.RecordDecisionRequest(request_id=args.request_id, outcome=args.outcome, reason=args.reason),
        metadata=md,
    )
    print_status(console, reply)
    return 0


def _decisions(args: argparse.Namespace, console: Console) -> int:
    stub, md = _board(args)
    outcome = pb.Outcome.Value("OUTCOME_" + args.outcome.upper()) if args.outcome else pb.OUTCOME_UNSPECIFIED
    decisions, reply = every_page(
        stub.ListDecisions,
        pb.ListDecisionsRequest(decided_by=args.by, outcome=outcome, organisation_id=args.org),
        "decisions",
        limit=args.limit,
        metadata=md,
    )
    records = [_decision_record(d) for d in decisions]
    if args.json:
        print_json({"decisions": records, "reviewed": reply.reviewed, "agreed": reply.agreed})
        return 0
    columns = [
        Col("decided", "decided"), Col("by", "by"), Col("request_id", "request", True),
        Col("organisation_id", "organisation", True), Col("outcome", "outcome"), Col("proposed", "proposed"),
        Col("score", "score"), Col("agreed", "agreed"),
    ]  # fmt: skip
    show(console, records, columns, as_json=False, empty="no decisions")
    console.print(
        f"board agreed with the policy's proposal in {reply.agreed} of {reply.reviewed} reviews "
        "(a request the policy referred without a proposal counts in neither)",
        markup=False,
    )
    return 0


def _decision_record(d: pb.Decision) -> dict[str, Any]:
    board = d.decided_by == "board"
    proposal = board and d.proposed != pb.OUTCOME_REFER  # the policy proposed an outcome to agree with
    return {
        "decided": d.decided_at.ToDatetime(UTC), "by": d.decided_by, "request_id": d.request_id,
        "organisation_id": d.organisation_id, "outcome": outcome_name(d.outcome),
        "proposed": outcome_name(d.proposed), "score": None if board else d.score,
        "agreed": d.agreed_with_policy if proposal else None, "reasons": list(d.reasons),
    }  # fmt: skip


def _orgs(args: argparse.Namespace, console: Console) -> int:
    stub, md = _board(args)
    organisations = every_page(
        stub.ListOrganisations, pb.ListOrganisationsRequest(), "organisations", metadata=md
    )[0]
    columns = [
        Col("organisation_id", "organisation", True), Col("name", "name"), Col("type", "type"),
        Col("verified", "verified"), Col("score", "score"), Col("contact", "contact"),
    ]  # fmt: skip
    records = [organisation_record(o) for o in organisations]
    show(console, records, columns, as_json=args.json, empty="no organisations registered")
    return 0


def _verify(args: argparse.Namespace, console: Console) -> int:
    stub, md = _board(args)
    org = stub.VerifyOrganisation(
        pb.VerifyOrganisationRequest(
            organisation_id=args.organisation_id, verified=not args.withdraw, note=args.note
        ),
        metadata=md,
    )
    console.print(f"{org.name}: verified {cell(org.verified)}", markup=False)
    print_assessment(console, org.assessment)
    return 0


def _revoke(args: argparse.Namespace, console: Console) -> int:
    stub, md = _board(args)
    grant = stub.RevokeGrant(pb.RevokeGrantRequest(grant_id=args.grant_id, reason=args.reason), metadata=md)
    console.print(f"grant {grant.grant_id} revoked: {grant.revocation_reason}", markup=False)
    return 0


def _applicants(args: argparse.Namespace, console: Console) -> int:
    stub, md = _board(args)
    found = every_page(stub.ListApplicants, pb.ListApplicantsRequest(), "applicants", metadata=md)[0]
    records = [
        {"member_id": a.member_id, "name": a.display_name, "applied": a.applied_at.ToDatetime(UTC),
         "meter": a.has_meter}
        for a in found
    ]  # fmt: skip
    columns = [Col("member_id", "member", True), Col("name", "name"), Col("applied", "applied")]
    show(console, records, [*columns, Col("meter", "named a meter")], as_json=args.json, empty="no one waits")
    return 0


def _admission(args: argparse.Namespace, console: Console) -> int:
    stub, md = _board(args)
    if args.admit:
        reply = stub.AdmitMember(
            pb.AdmitMemberRequest(member_id=args.member_id, reason=args.reason), metadata=md
        )
    else:
        reply = stub.RefuseMember(
            pb.RefuseMemberRequest(member_id=args.member_id, reason=args.reason), metadata=md
        )
    console.print(f"{reply.member_id} is now {reply.status}", markup=False)
    return 0


def _invite(args: argparse.Namespace, console: Console) -> int:
    stub, md = _board(args)
    inv = stub.CreateInvitation(pb.CreateInvitationRequest(expires_days=args.expires), metadata=md)
    expires = inv.expires_at.ToDatetime(UTC)
    record = {"invitation_id": inv.invitation_id, "code": inv.code, "expires": expires}
    if args.json:
        print_json(record)
        return 0
    console.print(f"invitation code: {inv.code}", markup=False)
    console.print(
        f"valid once, until {local_time(expires)}; give it to the person invited: "
        "it is not shown again (`coopfed member register ... --invitation CODE`)",
        markup=False,
    )
    return 0


# --- audit --------------------------------------------------------------------------------


def add_audit(parser: argparse.ArgumentParser, console: Console) -> None:
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    verify = commands.add_parser(
        "verify",
        help="check the hash chain, the node's signed head and its peers' copies; name what is wrong",
    )
    verify.add_argument("--config", type=Path, help="the node's coopfed.toml (its database is checked)")
    verify.add_argument("--file", type=Path, help="an exported log (JSON lines) to check instead")
    verify.add_argument(
        "--head", default="", help="SEQ:HASH recorded earlier, to detect entries cut off the end"
    )
    verify.add_argument(
        "--offline", action="store_true", help="do not ask the pinned peers for the heads they keep"
    )
    export = commands.add_parser("export", help="write the decision log as JSON lines")
    add_config_option(export)
    export.add_argument("--out", type=Path, required=True)
    bind(commands, {"verify": _audit_verify, "export": _audit_export}, console)


def _open_log(config: Path) -> Any:
    from coopfed.node.storage.configured import open_store
    from coopfed.node.storage.governance_sqlite import SqlGovernanceStore

    store = open_store(node_settings(config), create=True)
    return store, SqlGovernanceStore(store)


def _parse_head(text: str) -> tuple[int, str] | None:
    if not text:
        return None
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise UsageError("--head: SEQ:HASH as printed by `coopfed audit verify`", code="cli.head")
    return int(seq), digest


def _audit_verify(args: argparse.Namespace, console: Console) -> int:
    from coopfed.node.decisionlog import verify

    head = _parse_head(args.head)
    if args.file:
        with args.file.open(encoding="utf-8") as lines:
            report = verify((line for line in lines if line.strip()), head=head)
    elif args.config:
        report = _audit_node(args, console, head)
    else:
        raise UsageError("give --config (the node's log) or --file (an export)", code="cli.audit")
    for problem in report.problems:
        console.print(f"{problem.kind}: {problem.message}", markup=False, style="red")
    if not report.ok:
        console.print(f"the decision log fails verification: {len(report.problems)} problem(s)")
        return 1
    console.print(
        f"decision log verified: {report.entries} entries, head {report.head_seq}:{report.head_hash}"
    )
    return 0


def _audit_node(args: argparse.Namespace, console: Console, head: tuple[int, str] | None) -> Any:
    """The node's own log, against its signed head and what its pinned peers keep of it."""
    import asyncio

    from coopfed.federation.keys import KeyRing, TrustStore
    from coopfed.node.audit import Witnesses, ask_witnesses, audit
    from coopfed.node.storage.federation_sqlite import SqlFederationStore

    store, gov = _open_log(args.config)
    settings = node_settings(args.config)
    ring = KeyRing.load(settings.keys_dir)
    peers = SqlFederationStore(store)
    witnesses = Witnesses() if args.offline else asyncio.run(ask_witnesses(settings, ring, peers))
    for peer, why in witnesses.failures.items():
        console.print(f"witness {peer} could not be asked: {why}", markup=False, style="yellow")
    if witnesses.heads:
        held = ", ".join(f"{peer} ({len(heads)} heads)" for peer, heads in witnesses.heads.items())
        console.print(f"checked against the heads its witnesses keep: {held}", markup=False)
    try:
        return audit(
            gov.decision_log(),
            node_id=settings.node.id,
            trust=TrustStore({settings.node.id: ring.jwks()}),
            signed=gov.signed_head(),
            witnessed=witnesses.heads,
            head=head or gov.decision_log_head(),
        )
    finally:
        store.close()


def _audit_export(args: argparse.Namespace, console: Console) -> int:
    from coopfed.node.decisionlog import export_lines

    store, gov = _open_log(args.config)
    try:
        count = 0
        with open_private(args.out) as out:
            for line in export_lines(gov.decision_log()):
                out.write(line)
                count += 1
        seq, digest = gov.decision_log_head()
    finally:
        store.close()
    console.print(
        f"exported {count} entries to {args.out}; head {seq}:{digest}", highlight=False, soft_wrap=True
    )
    return 0


def _revoke_token(args: argparse.Namespace, console: Console) -> int:
    stub, md = _board(args)
    target = {"jti": args.jti, "member_id": args.member, "organisation_id": args.org}
    target["board_member"] = args.board_member
    name, value = next((k, v) for k, v in target.items() if v)
    reply = stub.RevokeToken(pb.RevokeTokenRequest(reason=args.reason, **{name: value}), metadata=md)
    if reply.HasField("issued_before"):
        when = local_time(reply.issued_before.ToDatetime(UTC))
        console.print(f"revoked every token of {value} issued before {when}", markup=False)
    else:
        console.print(f"revoked token {value}", markup=False)
    return 0


def _renew(args: argparse.Namespace, console: Console) -> int:
    stub, md = _board(args)
    reply = stub.RenewToken(pb.RenewTokenRequest(), metadata=md)
    Credentials.load(args.credentials, "").replace_token(args.credentials, reply.token)
    when = local_time(reply.expires_at.ToDatetime(UTC))
    console.print(f"renewed: the new token, valid until {when}, is saved to {args.credentials}", markup=False)
    return 0
