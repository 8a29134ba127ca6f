"""`coopfed ballot ...`: members and the board propose changes to the rules, sign, vote, count;
the board turns a passed ballot into the policy change its signed bundle names."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from coopfed.node.ballots import voting
from coopfed.node.ballots.tally import find_receipt, recount
from coopfed.node.cli.common import ClientAction, add_credentials_option, bind
from coopfed.node.cli.output import Col, add_json_option, print_json, show, show_record
from coopfed.node.client import Credentials, bearer, every_page
from coopfed.node.errors import FailedPrecondition, UsageError
from coopfed.node.policy.data_changes import merge_patch
from coopfed.v1 import ballot_pb2 as pb
from coopfed.v1 import ballot_pb2_grpc as pb_grpc

DEFAULT_CREDENTIALS = Path("member.json")
HINT = "give --credentials FILE: a member's (coopfed member register) or the board's (coopfed review token)"


def add_commands(parser: argparse.ArgumentParser, console: Console) -> None:
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    propose = commands.add_parser("propose", help="propose a change to the rules members decide")
    propose.add_argument("--title", required=True)
    propose.add_argument("--explanation", required=True, help="what changes and why, in plain words")
    propose.add_argument("--change", help="a JSON merge patch over the policy data (a yes/no ballot)")
    propose.add_argument(
        "--alternative", action="append", default=[], metavar="TITLE=JSON",
        help="one alternative of a choice (repeat, 2 to 8), each a merge patch",
    )  # fmt: skip
    propose.add_argument("--opens", type=_instant, help="board: when voting opens (ISO 8601; default now)")
    propose.add_argument("--closes", type=_instant, help="board: when voting closes (ISO 8601)")
    commands.add_parser("list", help="ballots and petitions, newest first")
    for name, text in (
        ("show", "a ballot: the proposal, its impact, its result"),
        ("sign", "sign a petition"),
    ):
        commands.add_parser(name, help=text).add_argument("ballot_id")
    commands.choices["show"].add_argument(
        "--report", action="store_true", help="print each alternative's whole impact report (Markdown)"
    )
    vote = commands.add_parser("vote", help="vote, once; keep the receipt it prints")
    vote.add_argument("ballot_id")
    vote.add_argument("choice", help="yes, no or abstain; or a1, a2, ... or abstain")
    tally = commands.add_parser("tally", help="the published count of a closed ballot; check your receipt")
    tally.add_argument("ballot_id")
    tally.add_argument("--receipt", help="your receipt: check the tally counts your vote, and how")
    apply = commands.add_parser(
        "apply", help="the board: write a passed ballot's change into a policy folder"
    )
    apply.add_argument("ballot_id")
    apply.add_argument("--policies", type=Path, required=True, help="the policy folder to change")
    for sub in commands.choices.values():
        add_credentials_option(sub, DEFAULT_CREDENTIALS)
        add_json_option(sub)
    actions: dict[str, ClientAction] = {
        "propose": _propose, "list": _list, "show": _show, "sign": _sign, "vote": _vote, "tally": _tally,
        "apply": _apply,
    }  # fmt: skip
    bind(commands, actions, console)


def _instant(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time (ISO 8601, e.g. 2026-12-01T18:00+00:00): {text!r}"
        ) from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"say which time zone: {text!r} (e.g. +00:00)")
    return at


def _session(args: argparse.Namespace) -> tuple[pb_grpc.BallotServiceStub, tuple]:
    creds = Credentials.load(args.credentials, HINT)
    return pb_grpc.BallotServiceStub(creds.channel()), bearer(creds.token)


def _propose(args: argparse.Namespace, console: Console) -> int:
    if bool(args.change) == bool(args.alternative):
        raise UsageError(
            "give --change (a yes/no ballot) or two or more --alternative", code="cli.ballot_change"
        )
    request = pb.ProposeRequest(title=args.title, explanation=args.explanation, change_json=args.change or "")
    for text in args.alternative:
        title, sep, change = text.partition("=")
        if not sep:
            raise UsageError(f"--alternative TITLE=JSON, not {text!r}", code="cli.ballot_alternative")
        request.alternatives.add(title=title, change_json=change)
    if args.opens:
        request.opens_at.FromDatetime(args.opens)
    if args.closes:
        request.closes_at.FromDatetime(args.closes)
    stub, md = _session(args)
    ballot = stub.Propose(request, metadata=md, timeout=600)
    _print_ballot(console, ballot, args.json)
    return 0


def record(b: pb.Ballot) -> dict[str, Any]:
    """A ballot as a person reads it (and as --json prints it)."""
    proposal = json.loads(b.proposal_json) if b.proposal_json else {}
    return {
        "ballot_id": b.ballot_id,
        "title": b.title,
        "state": voting.STATE_WORDS.get(b.state, b.state),
        "proposed_by": b.proposed_by,
        "signatures": f"{b.signatures} of {b.signatures_needed}" if b.state == "petition" else b.signatures,
        "opens": b.opens_at.ToDatetime(UTC) if b.HasField("opens_at") else None,
        "closes": b.closes_at.ToDatetime(UTC) if b.HasField("closes_at") else None,
        "voted": b.voted,
        "you_voted": b.you_voted,
        "choices": [f"{c.key} ({c.title})" for c in b.choices],
        "explanation": b.explanation,
        "alternatives": [
            {
                "key": a["key"],
                "title": a["title"],
                "change": a["patch"],
                "impact": a["impact"]["summary"],
                "changes": [f"{c['what']}: {c['before']} becomes {c['after']}" for c in a["changes"]],
            }
            for a in proposal.get("alternatives", [])
        ],
        "tally": json.loads(b.tally_json) if b.tally_json else None,
        "tally_digest": b.tally_digest,
    }


def _print_ballot(console: Console, b: pb.Ballot, as_json: bool) -> None:
    rec = record(b)
    labels = {
        "ballot_id": "ballot", "title": "title", "state": "state", "proposed_by": "proposed by",
        "signatures": "signatures", "opens": "voting opens", "closes": "voting closes",
        "voted": "members voted", "you_voted": "you voted", "choices": "choices",
    }  # fmt: skip
    show_record(console, rec, labels, as_json=as_json)
    if as_json:
        return
    console.print(f"\n{rec['explanation']}\n", markup=False)
    for alt in rec["alternatives"]:
        console.print(f"{alt['key']}: {alt['title']}", markup=False)
        for line in alt["changes"] or ["the rules stay as they are"]:
            console.print(f"  {line}", markup=False)
        console.print(f"  impact: {alt['impact']}", markup=False)
    if rec["tally"]:
        _print_tally(console, rec["tally"], b.tally_digest, b.choices)


def _print_tally(console: Console, tally: dict[str, Any], digest: str, choices: Sequence[pb.Choice]) -> None:
    """The result in the ballot's own order of choices."""
    counts = ", ".join(f"{c.key} {tally['counts'].get(c.key, 0)}" for c in choices)
    titles = {c.key: c.title for c in choices}
    outcome = "not passed"
    if tally["passed"]:
        outcome = (
            "passed"
            if tally["winner"] == "yes"
            else f"passed: {titles.get(tally['winner'], tally['winner'])}"
        )
    quorum = "met" if tally["quorum_met"] else "not met"
    turnout = f"{tally['voted']} of {tally['eligible']} members voted, quorum {quorum}"
    console.print(f"\nresult: {outcome} ({counts}; {turnout})", markup=False)
    console.print(f"tally digest: {digest}", markup=False)


def _list(args: argparse.Namespace, console: Console) -> int:
    stub, md = _session(args)
    ballots, _ = every_page(stub.ListBallots, pb.ListBallotsRequest(), "ballots", metadata=md)
    columns = [
        Col("ballot_id", "ballot", is_id=True), Col("title", "title"), Col("state", "state"),
        Col("closes", "voting closes"), Col("voted", "voted"),
    ]  # fmt: skip
    show(console, [record(b) for b in ballots], columns, as_json=args.json, empty="no ballots yet")
    return 0


def _show(args: argparse.Namespace, console: Console) -> int:
    stub, md = _session(args)
    ballot = stub.GetBallot(pb.GetBallotRequest(ballot_id=args.ballot_id), metadata=md)
    _print_ballot(console, ballot, args.json)
    if args.report and not args.json:
        for alt in json.loads(ballot.proposal_json)["alternatives"]:
            console.print(f"\n# {alt['key']}: {alt['title']}\n", markup=False)
            console.print(alt["impact"]["markdown"], markup=False, soft_wrap=True)
    return 0


def _sign(args: argparse.Namespace, console: Console) -> int:
    stub, md = _session(args)
    ballot = stub.SignPetition(pb.SignPetitionRequest(ballot_id=args.ballot_id), metadata=md)
    _print_ballot(console, ballot, args.json)
    return 0


def _vote(args: argparse.Namespace, console: Console) -> int:
    stub, md = _session(args)
    reply = stub.Vote(pb.VoteRequest(ballot_id=args.ballot_id, choice=args.choice), metadata=md)
    if args.json:
        print_json({"receipt": reply.receipt, "receipt_hash": reply.receipt_hash})
        return 0
    console.print(f"your vote is cast. Your receipt: {reply.receipt}", markup=False)
    console.print(
        "Keep it: nobody else has it. Once the ballot closes, `coopfed ballot tally "
        f"{args.ballot_id} --receipt RECEIPT` shows that your vote was counted, and how.",
        markup=False,
    )
    return 0


def _tally(args: argparse.Namespace, console: Console) -> int:
    stub, md = _session(args)
    ballot = stub.Tally(pb.TallyRequest(ballot_id=args.ballot_id), metadata=md)
    tally = json.loads(ballot.tally_json)
    counted = find_receipt(tally, args.ballot_id, args.receipt) if args.receipt else None
    consistent = recount(tally)
    if args.json:
        print_json(
            {**tally, "tally_digest": ballot.tally_digest, "your_vote": counted, "recounted": consistent}
        )
    else:
        console.print(f"{ballot.title} ({ballot.ballot_id})", markup=False)
        _print_tally(console, tally, ballot.tally_digest, ballot.choices)
        console.print(
            f"the totals {'are' if consistent else 'are NOT'} the count of the "
            f"{len(tally['receipts'])} published receipts",
            markup=False,
        )
        if args.receipt:
            console.print(
                f"your receipt is counted as: {counted}" if counted else "your receipt is NOT in the tally",
                markup=False,
            )
    return 0 if consistent and (counted or not args.receipt) else 1


def _apply(args: argparse.Namespace, console: Console) -> int:
    stub, md = _session(args)
    ballot = stub.GetBallot(pb.GetBallotRequest(ballot_id=args.ballot_id), metadata=md)
    tally = json.loads(ballot.tally_json) if ballot.tally_json else None
    if not tally or not tally["passed"]:
        raise FailedPrecondition(
            f"ballot {args.ballot_id} is {voting.STATE_WORDS.get(ballot.state, ballot.state)}"
            f"{'' if not tally else ' and did not pass'}: there is no change to apply",
            code="cli.ballot_not_passed",
        )
    path = args.policies / "data.json"
    if not path.is_file():
        raise UsageError(f"no data.json in {args.policies}", code="cli.policies")
    data = merge_patch(json.loads(path.read_text(encoding="utf-8")), tally["change"])
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    flag = f"--ballot {ballot.ballot_id}:{ballot.tally_digest}"
    if args.json:
        print_json({"ballot_id": ballot.ballot_id, "tally_digest": ballot.tally_digest, "data": str(path)})
    else:
        console.print(f"wrote the change of {ballot.ballot_id} into {path}", markup=False)
        console.print(f"build the bundle with: coopfed policy bundle ... {flag}", markup=False)
    return 0
