"""`coopfed review|audit ...`: the board's commands, and verifying or exporting the decision log."""

from __future__ import annotations

import argparse
from datetime import UTC
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from coopfed.federation.keys import open_private
from coopfed.node.cli.common import bind, id_column
from coopfed.node.cli.governance import outcome_name, print_assessment, print_status
from coopfed.node.client import Credentials, bearer, channel
from coopfed.node.errors import UsageError
from coopfed.v1 import governance_pb2 as pb
from coopfed.v1 import governance_pb2_grpc as pb_grpc

DEFAULT_BOARD = Path("board.json")


# --- review (the board) -------------------------------------------------------------------


def add_review(parser: argparse.ArgumentParser, console: Console) -> None:
    parser.add_argument("--credentials", type=Path, default=DEFAULT_BOARD, help="saved board token")
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    token = commands.add_parser("token", help="make a board token (on the node's machine: needs its keys)")
    token.add_argument("--config", type=Path, required=True, help="the node's coopfed.toml")
    token.add_argument("--name", required=True, help="the board member's name for the record")
    token.add_argument("--days", type=int, default=30, help="how long the token is valid")
    token.add_argument(
        "--node", default="", help="address to save with it (default: the node's listen address)"
    )
    commands.add_parser("list", help="requests the policy referred to the board")
    for verb in ("approve", "reject"):
        sub = commands.add_parser(verb, help=f"{verb} a referred request")
        sub.add_argument("request_id")
        sub.add_argument("--reason", required=True, help="why, in words the organisation will read")
    decisions = commands.add_parser("decisions", help="policy and board decisions, and agreement")
    decisions.add_argument("--by", choices=["policy", "board"], default="")
    decisions.add_argument("--outcome", choices=["approve", "reject", "refer"], default="")
    decisions.add_argument("--org", default="")
    decisions.add_argument("--limit", type=int, default=100)
    commands.add_parser("orgs", help="registered organisations")
    verify = commands.add_parser("verify", help="record that the board verified an organisation")
    verify.add_argument("organisation_id")
    verify.add_argument("--note", required=True, help="what the board checked")
    verify.add_argument("--withdraw", action="store_true", help="withdraw verification instead")
    revoke = commands.add_parser("revoke", help="revoke a grant before it expires")
    revoke.add_argument("grant_id")
    revoke.add_argument("--reason", required=True, help="why, in words the grantee will read")
    actions = {
        "token": _board_token, "list": _referred, "approve": _decide, "reject": _decide,
        "decisions": _decisions, "orgs": _orgs, "verify": _verify, "revoke": _revoke,
    }  # fmt: skip
    bind(commands, actions, console)
    commands.choices["approve"].set_defaults(outcome=pb.OUTCOME_APPROVE)
    commands.choices["reject"].set_defaults(outcome=pb.OUTCOME_REJECT)


def _board_token(args: argparse.Namespace, console: Console) -> int:
    from coopfed.federation.keys import KeyRing
    from coopfed.node.governance.organisations import issue_board_token
    from coopfed.node.settings import load_settings

    settings = load_settings(args.config)
    if args.days < 1 or args.days > 366:
        raise UsageError("--days: 1 to 366", code="cli.days")
    token = issue_board_token(
        settings.node.id, KeyRing.load(settings.keys_dir), args.name, args.days * 86_400
    )
    Credentials(args.node or settings.node.listen, f"board:{args.name}", token).save(args.credentials)
    console.print(f"board token for {args.name} saved to {args.credentials} (valid {args.days} days)")
    return 0


def _board(args: argparse.Namespace) -> tuple[pb_grpc.ReviewServiceStub, tuple]:
    creds = Credentials.load(args.credentials, "run `coopfed review token` on the node's machine")
    return pb_grpc.ReviewServiceStub(channel(creds.node)), bearer(creds.token)


def _referred(args: argparse.Namespace, console: Console) -> int:
    stub, md = _board(args)
    referred = stub.ListReferred(pb.ListReferredRequest(), metadata=md).requests
    if not referred:
        console.print("no requests await review")
    for s in referred:
        print_status(console, s)
        console.print()
    return 0


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
    outcome = pb.Outcome.Value("OUTCOME_" + args.outcome.upper()) if args.outcome else 0
    reply = stub.ListDecisions(
        pb.ListDecisionsRequest(
            decided_by=args.by, outcome=outcome, organisation_id=args.org, limit=args.limit
        ),
        metadata=md,
    )
    table = Table(
        "decided", "by", id_column("request"), "organisation", "outcome", "proposed", "score", "agreed"
    )
    for d in reply.decisions:
        agreed = ("yes" if d.agreed_with_policy else "no") if d.decided_by == "board" else ""
        score = str(d.score) if d.decided_by == "policy" else ""
        table.add_row(
            f"{d.decided_at.ToDatetime(UTC):%Y-%m-%d %H:%M}", d.decided_by, d.request_id, d.organisation_id,
            outcome_name(d.outcome), outcome_name(d.proposed), score, agreed,
        )  # fmt: skip
    console.print(table)
    console.print(f"board agreed with the policy's proposal in {reply.agreed} of {reply.reviewed} reviews")
    return 0


def _orgs(args: argparse.Namespace, console: Console) -> int:
    stub, md = _board(args)
    table = Table(id_column("organisation"), "name", "type", "verified", "score", "contact")
    for o in stub.ListOrganisations(pb.ListOrganisationsRequest(), metadata=md).organisations:
        table.add_row(
            o.organisation_id, o.name, o.type, "yes" if o.verified else "", str(o.assessment.score), o.contact
        )
    console.print(table)
    return 0


def _verify(args: argparse.Namespace, console: Console) -> int:
    stub, md = _board(args)
    org = stub.VerifyOrganisation(
        pb.VerifyOrganisationRequest(
            organisation_id=args.organisation_id, verified=not args.withdraw, note=args.note
        ),
        metadata=md,
    )
    console.print(f"{org.name}: verified {org.verified}")
    print_assessment(console, org.assessment)
    return 0


def _revoke(args: argparse.Namespace, console: Console) -> int:
    stub, md = _board(args)
    grant = stub.RevokeGrant(pb.RevokeGrantRequest(grant_id=args.grant_id, reason=args.reason), metadata=md)
    console.print(
        f"grant {grant.grant_id} revoked: {grant.revocation_reason}", highlight=False, soft_wrap=True
    )
    return 0


# --- audit --------------------------------------------------------------------------------


def add_audit(parser: argparse.ArgumentParser, console: Console) -> None:
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    verify = commands.add_parser(
        "verify", help="check the hash chain; name any entry edited, deleted or moved"
    )
    verify.add_argument("--config", type=Path, help="the node's coopfed.toml (its database is checked)")
    verify.add_argument("--file", type=Path, help="an exported log (JSON lines) to check instead")
    verify.add_argument(
        "--head", default="", help="SEQ:HASH recorded earlier, to detect entries cut off the end"
    )
    export = commands.add_parser("export", help="write the decision log as JSON lines")
    export.add_argument("--config", type=Path, required=True)
    export.add_argument("--out", type=Path, required=True)
    bind(commands, {"verify": _audit_verify, "export": _audit_export}, console)


def _open_log(config: Path) -> Any:
    from coopfed.node.settings import load_settings
    from coopfed.node.storage import SqliteStore
    from coopfed.node.storage.governance_sqlite import SqliteGovernanceStore

    settings = load_settings(config)
    store = SqliteStore(settings.path(settings.storage.path), synchronous=settings.storage.synchronous)
    return store, SqliteGovernanceStore(store)


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
        store, gov = _open_log(args.config)
        try:
            report = verify(gov.decision_log(), head=head or gov.decision_log_head())
        finally:
            store.close()
    else:
        raise UsageError("give --config (the node's log) or --file (an export)", code="cli.audit")
    for problem in report.problems:
        console.print(f"[red]{problem.kind}[/red]: {problem.message}", highlight=False, soft_wrap=True)
    if not report.ok:
        console.print(f"the decision log fails verification: {len(report.problems)} problem(s)")
        return 1
    console.print(
        f"decision log verified: {report.entries} entries, head {report.head_seq}:{report.head_hash}"
    )
    return 0


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
