"""`coopfed member ...`: a member's commands against their co-op's node."""

from __future__ import annotations

import argparse
import csv
import json
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf.json_format import MessageToDict
from rich.console import Console
from rich.table import Table

from coopfed.federation.keys import open_private
from coopfed.node.cli.common import bind
from coopfed.node.client import Credentials, bearer, channel
from coopfed.node.errors import UsageError
from coopfed.v1 import common_pb2, member_pb2, member_pb2_grpc

DEFAULT_CREDENTIALS = Path("member.json")
UPLOAD_BATCH = 10_000


def add_commands(parser: argparse.ArgumentParser, console: Console) -> None:
    parser.add_argument("--credentials", type=Path, default=DEFAULT_CREDENTIALS, help="saved member token")
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    register = commands.add_parser("register", help="join a co-op's node")
    register.add_argument("--node", default="127.0.0.1:50051", help="the node's host:port")
    register.add_argument("--name", required=True, help="your name as the co-op sees it")
    commands.add_parser("personas", help="the consent presets the co-op offers")
    commands.add_parser("consent", help="show your consent settings")
    setc = commands.add_parser("set-consent", help="change your consent settings")
    setc.add_argument("--level", choices=["green", "amber", "red"], default="")
    setc.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="DATASET=FLOW[,FLOW]",
        help="at amber: flows allowed for a dataset, e.g. demand=coop_to_coop,open_data",
    )
    setc.add_argument("--persona", default="", help="a persona name (replaces level and choices)")
    setc.add_argument("--nudges", action=argparse.BooleanOptionalAction, default=False)
    setc.add_argument("--reason", default="", help="why, when you withdraw consent")
    upload = commands.add_parser("upload", help="upload readings from a CSV file")
    upload.add_argument("csv", type=Path, help="columns: dataset, period_start (ISO 8601 UTC), kwh")
    export = commands.add_parser("export", help="export everything the node holds about you, as JSON")
    export.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    commands.add_parser("access", help="who received your data, when, and why")
    erase = commands.add_parser("erase", help="erase your data from the node")
    erase.add_argument("--yes", action="store_true", help="confirm")
    actions = {
        "register": _register,
        "personas": _personas,
        "consent": _consent,
        "set-consent": _set_consent,
        "upload": _upload,
        "export": _export,
        "access": _access,
        "erase": _erase,
    }
    bind(commands, actions, console)


def _stub(node: str) -> member_pb2_grpc.MemberServiceStub:
    return member_pb2_grpc.MemberServiceStub(channel(node))


def _session(args: argparse.Namespace) -> tuple[member_pb2_grpc.MemberServiceStub, tuple, Credentials]:
    creds = Credentials.load(args.credentials, "run `coopfed member register` first")
    return _stub(creds.node), bearer(creds.token), creds


def _register(args: argparse.Namespace, console: Console) -> int:
    reply = _stub(args.node).Register(member_pb2.RegisterRequest(display_name=args.name))
    Credentials(args.node, reply.member_id, reply.token).save(args.credentials)
    console.print(f"registered as [bold]{reply.member_id}[/bold]; token saved to {args.credentials}")
    return 0


def _personas(args: argparse.Namespace, console: Console) -> int:
    creds = Credentials.load(args.credentials, "run `coopfed member register` first")
    table = Table("persona", "title", "what it means", "version")
    for p in _stub(creds.node).ListPersonas(member_pb2.ListPersonasRequest()).personas:
        table.add_row(p.name, p.title, p.description, p.version)
    console.print(table)
    return 0


def _consent(args: argparse.Namespace, console: Console) -> int:
    stub, md, _ = _session(args)
    console.print_json(data=MessageToDict(stub.GetConsent(member_pb2.GetConsentRequest(), metadata=md)))
    return 0


def _set_consent(args: argparse.Namespace, console: Console) -> int:
    stub, md, _ = _session(args)
    level = common_pb2.ConsentLevel.Value(f"CONSENT_LEVEL_{args.level.upper()}") if args.level else 0
    settings = member_pb2.ConsentSettings(
        level=level, choices=[_choice(a) for a in args.allow], persona=args.persona, nudges=args.nudges
    )
    reply = stub.SetConsent(
        member_pb2.SetConsentRequest(settings=settings, withdrawal_reason=args.reason), metadata=md
    )
    console.print("consent changed: " + ("; ".join(reply.record.changes) or "no change"))
    console.print(f"receipt {reply.record.record_id} (signed JWT, {len(reply.receipt)} characters)")
    return 0


def _choice(text: str) -> common_pb2.DatasetChoice:
    dataset, _, flows = text.partition("=")
    try:
        values = [common_pb2.Flow.Value("FLOW_" + f.strip().upper()) for f in flows.split(",") if f.strip()]
    except ValueError as exc:
        raise UsageError(f"--allow {text}: {exc}", code="cli.flow") from exc
    return common_pb2.DatasetChoice(dataset=dataset.strip(), allowed_flows=values)


def _upload(args: argparse.Namespace, console: Console) -> int:
    stub, md, _ = _session(args)
    summary = stub.UploadReadings(iter(_batches_from_csv(args.csv)), metadata=md)
    console.print(f"stored {summary.inserted} new readings, replaced {summary.replaced}")
    return 0


def _batches_from_csv(path: Path) -> list[member_pb2.ReadingBatch]:
    """Read the whole file first, so a bad row is reported before anything is sent."""
    rows: dict[str, tuple[list[int], list[float]]] = {}
    with path.open(newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                at = datetime.fromisoformat(row["period_start"]).replace(tzinfo=UTC)
                periods, kwh = rows.setdefault(row["dataset"], ([], []))
                periods.append(int(at.timestamp()))
                kwh.append(float(row["kwh"]))
            except (KeyError, ValueError) as exc:
                raise UsageError(f"{path}:{line}: {exc}", code="cli.csv") from exc
    return [
        member_pb2.ReadingBatch(
            dataset=dataset, period_start_unix=periods[i : i + UPLOAD_BATCH], kwh=kwh[i : i + UPLOAD_BATCH]
        )
        for dataset, (periods, kwh) in rows.items()
        for i in range(0, len(periods), UPLOAD_BATCH)
    ]


def _export(args: argparse.Namespace, console: Console) -> int:
    stub, md, _ = _session(args)
    chunks = [MessageToDict(c) for c in stub.ExportMyData(member_pb2.ExportRequest(), metadata=md)]
    text = json.dumps(chunks, indent=2)
    if args.out:
        with open_private(args.out) as out:
            out.write(text)
        console.print(f"wrote {len(chunks)} chunks to {args.out}")
    else:
        print(text)
    return 0


def _access(args: argparse.Namespace, console: Console) -> int:
    stub, md, _ = _session(args)
    entries = stub.ListDataAccess(member_pb2.ListDataAccessRequest(), metadata=md).entries
    table = Table("when (UTC)", "who", "why", "flow", "what", "period")
    for e in entries:
        flow = common_pb2.Flow.Name(e.flow).removeprefix("FLOW_").lower()
        period = f"{_day(e.period.start_unix)} to {_day(e.period.end_unix)}"
        table.add_row(
            e.at.ToDatetime().strftime("%Y-%m-%d %H:%M"),
            e.organisation_name,
            e.purpose_label or e.purpose,
            flow,
            f"{e.dataset} ({e.granularity})",
            period,
        )
    console.print(table if entries else "no one outside the co-op has received your data")
    return 0


def _day(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d")


def _erase(args: argparse.Namespace, console: Console) -> int:
    if not args.yes:
        raise UsageError("erasing cannot be undone: add --yes", code="cli.confirm")
    stub, md, creds = _session(args)
    reply = stub.EraseMe(member_pb2.EraseRequest(confirm_member_id=creds.subject), metadata=md)
    console.print(f"erased {reply.readings_erased} readings; your token no longer works")
    args.credentials.unlink(missing_ok=True)
    return 0
