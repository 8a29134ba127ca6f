"""`coopfed member ...`: a member's commands against their co-op's node."""

from __future__ import annotations

import argparse
import json
from datetime import UTC
from pathlib import Path
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.json_format import MessageToDict
from rich.console import Console

from coopfed.federation.keys import open_private
from coopfed.node.cli import benchmark
from coopfed.node.cli.common import bind
from coopfed.node.cli.output import Col, add_json_option, print_json, show, show_record
from coopfed.node.cli.upload import read_readings
from coopfed.node.client import Credentials, add_node_options, bearer, channel, every_page
from coopfed.node.errors import UsageError
from coopfed.node.localtime import DEFAULT_TZ, local_day, local_time
from coopfed.node.model import DATASETS, Flow
from coopfed.v1 import common_pb2, member_pb2, member_pb2_grpc

DEFAULT_CREDENTIALS = Path("member.json")
UPLOAD_BATCH = 10_000
HINT = "run `coopfed member register` first, or give --credentials FILE"
# What each flow means to a member; internal use is always allowed, so it is never a choice.
FLOW_WORDS = {
    Flow.MEMBER_TO_MEMBER: "other members",
    Flow.COOP_TO_COOP: "aligned co-ops",
    Flow.THIRD_PARTY: "third parties",
    Flow.OPEN_DATA: "open data",
}
_FLOW_CHOICES = ", ".join(f.value for f in FLOW_WORDS)
_CONSENT_LABELS = {"level": "level", "persona": "persona", **{ds: ds for ds in DATASETS}, "nudges": "nudges"}


def add_commands(parser: argparse.ArgumentParser, console: Console) -> None:
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    register = commands.add_parser("register", help="join a co-op's node and save your credential")
    add_node_options(register)
    register.add_argument("--name", required=True, help="your name as the co-op sees it")
    register.add_argument(
        "--meter", default="", help="your meter's id (MPAN or serial): one member per meter"
    )
    register.add_argument(
        "--invitation", default="", metavar="CODE", help="an invitation code from the co-op"
    )
    register.add_argument("--force", action="store_true", help="replace the credential file if it exists")
    add_json_option(commands.add_parser("status", help="whether the co-op has admitted you"))
    add_json_option(commands.add_parser("personas", help="the consent presets the co-op offers"))
    add_json_option(commands.add_parser("consent", help="your consent settings"))
    setc = commands.add_parser(
        "set-consent",
        help="change your consent settings",
        description="Changes only what you give; everything else stays as it was.",
    )
    setc.add_argument("--level", choices=["green", "amber", "red"], help="the traffic light")
    setc.add_argument(
        "--allow",
        action="append",
        metavar="DATASET=FLOW[,FLOW]",
        help=f"at amber: what may be shared of a dataset ({_FLOW_CHOICES}); 'demand=' shares none of it. "
        "Datasets you leave out keep their choice",
    )
    setc.add_argument("--persona", help="a persona (see `member personas`): it sets the level and choices")
    setc.add_argument("--nudges", action=argparse.BooleanOptionalAction, help="nudges to shift appliance use")
    setc.add_argument("--reason", default="", help="why, when you withdraw consent")
    upload = commands.add_parser("upload", help="upload half-hourly readings from a CSV file")
    upload.add_argument(
        "csv",
        type=Path,
        help="a header line dataset,period_start,kwh then one reading a line, e.g. "
        "demand,2026-01-15T12:00+00:00,0.42; a time with a UTC offset keeps it, a time without one "
        "is read on the co-op's clock (--tz)",
    )
    upload.add_argument("--tz", default=DEFAULT_TZ, help=f"the co-op's time zone (default {DEFAULT_TZ})")
    export = commands.add_parser("export", help="everything the node holds about you, with your receipts")
    export.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    access = commands.add_parser("access", help="who received your data, when, and why")
    add_json_option(access)
    receipts = commands.add_parser("receipts", help="the signed receipt of every consent change you made")
    receipts.add_argument("--save", type=Path, metavar="DIR", help="write each receipt to DIR/receipt-ID.jwt")
    add_json_option(receipts)
    erase = commands.add_parser("erase", help="erase your data from the node")
    erase.add_argument("--yes", action="store_true", help="do not ask: erasing cannot be undone")
    benchmark.add_parsers(commands)
    commands.add_parser(
        "sign-out-everywhere", help="revoke every token of yours (a lost device) and save a fresh one"
    )
    for sub in commands.choices.values():
        sub.add_argument(
            "--credentials",
            type=Path,
            default=DEFAULT_CREDENTIALS,
            help="your saved credential (member.json)",
        )
    actions = {
        "register": _register,
        "status": _status,
        "personas": _personas,
        "consent": _consent,
        "set-consent": _set_consent,
        "upload": _upload,
        "export": _export,
        "access": _access,
        "receipts": _receipts,
        "erase": _erase,
        "home": benchmark.home,
        "benchmark": benchmark.benchmark,
        "sign-out-everywhere": _sign_out_everywhere,
    }
    bind(commands, actions, console)


def _session(args: argparse.Namespace) -> tuple[member_pb2_grpc.MemberServiceStub, tuple, Credentials]:
    creds = Credentials.load(args.credentials, HINT)
    return member_pb2_grpc.MemberServiceStub(creds.channel()), bearer(creds.token), creds


def _register(args: argparse.Namespace, console: Console) -> int:
    if args.credentials.exists() and not args.force:  # before registering: a second member helps no one
        raise UsageError(
            f"{args.credentials} already holds a credential: keep it, choose another file "
            "(--credentials), or replace it with --force",
            code="cli.credentials_exist",
        )
    ca = str(args.ca.resolve()) if args.ca else ""
    stub = member_pb2_grpc.MemberServiceStub(channel(args.node, ca=args.ca, fingerprint=args.fingerprint))
    request = member_pb2.RegisterRequest(
        display_name=args.name, meter_id=args.meter, invitation_code=args.invitation
    )
    reply = stub.Register(request)
    Credentials(args.node, reply.member_id, reply.token, ca, args.fingerprint).save(
        args.credentials, force=args.force
    )
    console.print(f"registered as {reply.member_id}; credential saved to {args.credentials}", markup=False)
    console.print(_STANDING[reply.status], markup=False)
    return 0


_STANDING = {
    "admitted": "you are a member: your data counts in what the co-op shares, as your consent allows",
    "applicant": "you have applied: the co-op's board decides; until then your data is shared with no one",
    "refused": "the co-op's board did not admit you",
}


def _status(args: argparse.Namespace, console: Console) -> int:
    stub, md, _ = _session(args)
    reply = stub.GetMembership(member_pb2.GetMembershipRequest(), metadata=md)
    applied = reply.applied_at.ToDatetime(UTC)
    decided = reply.decided_at.ToDatetime(UTC) if reply.HasField("decided_at") else None
    record = {
        "status": reply.status,
        "applied": applied,
        "decided": decided,
        "reason": reply.refusal_reason,
    }
    if args.json:
        print_json(record)
        return 0
    console.print(_STANDING[reply.status], markup=False)
    console.print(f"applied {local_time(applied)}", markup=False)
    if decided:
        console.print(f"decided {local_time(decided)}", markup=False)
    if record["reason"]:
        console.print(f"reason: {record['reason']}", markup=False)
    return 0


def _personas(args: argparse.Namespace, console: Console) -> int:
    stub, _, _ = _session(args)
    found = every_page(stub.ListPersonas, member_pb2.ListPersonasRequest(), "personas")[0]
    records = [
        {"name": p.name, "title": p.title, "description": p.description, "version": p.version} for p in found
    ]
    columns = [Col("name", "persona", is_id=True), Col("title", "title"), Col("description", "what it means")]
    show(console, records, [*columns, Col("version", "version")], as_json=args.json, empty="no personas")
    return 0


def _consent(args: argparse.Namespace, console: Console) -> int:
    stub, md, _ = _session(args)
    settings = stub.GetConsent(member_pb2.GetConsentRequest(), metadata=md)
    _show_settings(console, settings, as_json=args.json)
    return 0


def settings_record(settings: member_pb2.ConsentSettings) -> dict[str, Any]:
    """Consent settings in a member's words: level, persona, what each dataset may be shared with."""
    choices = {c.dataset: [_flow(f).value for f in c.allowed_flows] for c in settings.choices}
    return {
        "level": common_pb2.ConsentLevel.Name(settings.level).removeprefix("CONSENT_LEVEL_").lower(),
        "persona": settings.persona,
        "choices": choices,
        "nudges": settings.nudges,
    }


def _show_settings(console: Console, settings: member_pb2.ConsentSettings, *, as_json: bool) -> None:
    record = settings_record(settings)
    if as_json:
        print_json(record)
        return
    shared = {ds: _shared_with(record, ds) for ds in DATASETS}
    show_record(
        console, {**record, **shared, "persona": record["persona"] or "none"}, _CONSENT_LABELS, as_json=False
    )


def _shared_with(record: dict[str, Any], dataset: str) -> str:
    if record["level"] == "red":
        return "used inside the co-op only"
    if record["level"] == "green":
        return "may be shared as the co-op sees fit, within its aims"
    flows = record["choices"].get(dataset, [])
    return (
        "shared with " + ", ".join(FLOW_WORDS[Flow(f)] for f in flows)
        if flows
        else "used inside the co-op only"
    )


def _flow(value: int) -> Flow:
    return Flow(common_pb2.Flow.Name(common_pb2.Flow.ValueType(value)).removeprefix("FLOW_").lower())


def _set_consent(args: argparse.Namespace, console: Console) -> int:
    settings, paths = _consent_change(args)
    stub, md, _ = _session(args)
    request = member_pb2.SetConsentRequest(
        settings=settings, update_mask=FieldMask(paths=paths), withdrawal_reason=args.reason
    )
    record = stub.SetConsent(request, metadata=md).record
    console.print("changed: " + ("; ".join(record.changes) or "nothing"), markup=False)
    console.print("your consent is now:", markup=False)
    _show_settings(console, record.settings, as_json=False)
    console.print(f"receipt {record.record_id} is signed and kept: `coopfed member receipts`", markup=False)
    return 0


def _consent_change(args: argparse.Namespace) -> tuple[member_pb2.ConsentSettings, list[str]]:
    """The settings to send and the field mask naming them: only what was given changes."""
    if args.persona and (args.level or args.allow):
        raise UsageError("a persona sets the level and choices: give --persona, or --level and --allow")
    if args.allow and args.level in ("red", "green"):
        raise UsageError(f"--allow chooses per dataset at amber; at {args.level} it would mean nothing")
    given = {"level": args.level, "choices": args.allow, "persona": args.persona, "nudges": args.nudges}
    paths = [name for name, value in given.items() if value is not None]
    if not paths:
        raise UsageError("nothing to change: give --level, --allow, --persona or --nudges/--no-nudges")
    level = f"CONSENT_LEVEL_{args.level.upper()}" if args.level else "CONSENT_LEVEL_UNSPECIFIED"
    settings = member_pb2.ConsentSettings(
        level=common_pb2.ConsentLevel.Value(level),
        choices=[_choice(a) for a in args.allow or []],
        persona=args.persona or "",
        nudges=bool(args.nudges),
    )
    return settings, paths


def _choice(text: str) -> common_pb2.DatasetChoice:
    dataset, sep, flows = text.partition("=")
    if not sep or dataset.strip() not in DATASETS:
        raise UsageError(f"--allow {text}: write DATASET=FLOW[,FLOW] with a dataset of {', '.join(DATASETS)}")
    values = []
    for name in filter(None, (f.strip().lower() for f in flows.split(","))):
        if name not in {f.value for f in FLOW_WORDS}:
            raise UsageError(f"--allow {text}: {name!r} is not a flow to choose; flows: {_FLOW_CHOICES}")
        values.append(common_pb2.Flow.Value("FLOW_" + name.upper()))
    return common_pb2.DatasetChoice(dataset=dataset.strip(), allowed_flows=values)


def _upload(args: argparse.Namespace, console: Console) -> int:
    batches = read_readings(args.csv, args.tz)  # every row checked before anything is sent
    stub, md, _ = _session(args)
    messages = [
        member_pb2.ReadingBatch(
            dataset=b.dataset,
            period_start_unix=b.periods[i : i + UPLOAD_BATCH].tolist(),
            kwh=b.kwh[i : i + UPLOAD_BATCH].tolist(),
        )
        for b in batches
        for i in range(0, len(b.periods), UPLOAD_BATCH)
    ]
    summary = stub.UploadReadings(iter(messages), metadata=md)
    console.print(f"stored {summary.inserted} new readings, replaced {summary.replaced}", markup=False)
    return 0


def _export(args: argparse.Namespace, console: Console) -> int:
    stub, md, _ = _session(args)
    chunks = [MessageToDict(c) for c in stub.ExportMyData(member_pb2.ExportRequest(), metadata=md)]
    text = json.dumps(chunks, indent=2)
    if args.out:
        with open_private(args.out) as out:
            out.write(text)
        console.print(f"wrote {len(chunks)} chunks to {args.out}", markup=False)
    else:
        print(text)
    return 0


def _access(args: argparse.Namespace, console: Console) -> int:
    stub, md, _ = _session(args)
    entries = every_page(stub.ListDataAccess, member_pb2.ListDataAccessRequest(), "entries", metadata=md)[0]
    records = [
        {
            "at": e.at.ToDatetime(tzinfo=UTC),
            "organisation": e.organisation_name or e.organisation_id,
            "purpose": e.purpose_label or e.purpose,
            "flow": _flow(e.flow).value,
            "to_whom": FLOW_WORDS.get(_flow(e.flow), "the co-op itself"),
            "dataset": e.dataset,
            "granularity": e.granularity,
            "from": local_day(e.period.start_unix),
            "to": local_day(e.period.end_unix - 1),
            "grant_id": e.grant_id,
            "decision_id": e.decision_id,
        }
        for e in entries
        if _flow(e.flow) is not Flow.MEMBER_TO_MEMBER
    ]
    records += benchmark.comparisons_summary(entries)  # counted, never who looked
    records.sort(key=lambda r: r["at"], reverse=True)
    columns = [Col("at", "when"), Col("organisation", "who"), Col("purpose", "why"), Col("to_whom", "as")]
    columns += [Col("dataset", "what"), Col("from", "from"), Col("to", "to")]
    show(
        console, records, columns, as_json=args.json, empty="no one outside the co-op has received your data"
    )
    return 0


def _receipts(args: argparse.Namespace, console: Console) -> int:
    stub, md, _ = _session(args)
    history = every_page(
        stub.ListConsentHistory, member_pb2.ListConsentHistoryRequest(), "records", metadata=md
    )[0]
    records = [
        {
            "receipt_id": r.record_id,
            "at": r.at.ToDatetime(tzinfo=UTC),
            "changes": list(r.changes),
            "terms_version": r.terms_version,
            "receipt": r.receipt,
        }
        for r in history
        if r.receipt
    ]
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for r in records:
            with open_private(args.save / f"receipt-{r['receipt_id']}.jwt") as out:
                out.write(r["receipt"] + "\n")
    columns = [Col("receipt_id", "receipt", is_id=True), Col("at", "when"), Col("changes", "what changed")]
    show(console, records, columns, as_json=args.json, empty="no consent changes yet, so no receipts")
    if args.save and not args.json:
        console.print(f"saved {len(records)} receipts in {args.save}", markup=False)
    return 0


def _erase(args: argparse.Namespace, console: Console) -> int:
    stub, md, creds = _session(args)
    if not args.yes:
        question = f"erase your readings and details ({creds.subject})? it cannot be undone [y/N] "
        if console.input(question, markup=False).strip().lower() not in ("y", "yes"):
            console.print("nothing erased", markup=False)
            return 1
    reply = stub.EraseMe(member_pb2.EraseRequest(confirm_member_id=creds.subject), metadata=md)
    console.print(f"erased {reply.readings_erased} readings; your credential no longer works", markup=False)
    args.credentials.unlink(missing_ok=True)
    return 0


def _sign_out_everywhere(args: argparse.Namespace, console: Console) -> int:
    stub, md, creds = _session(args)
    reply = stub.SignOutEverywhere(member_pb2.SignOutEverywhereRequest(), metadata=md)
    creds.replace_token(args.credentials, reply.token)
    console.print(
        f"every earlier token of yours is revoked; the new one is saved to {args.credentials}", markup=False
    )
    return 0
