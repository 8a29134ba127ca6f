"""`coopfed member home` and `coopfed member benchmark`: a member's home and their comparison."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import arrow
from google.protobuf.json_format import MessageToDict
from rich.console import Console

from coopfed.node.cli.output import add_json_option, print_json, show_record
from coopfed.node.client import Credentials, bearer
from coopfed.node.localtime import DEFAULT_TZ, local_day
from coopfed.node.storage.base import HEATING, HOME_TYPES, INSTALLED, MAX_INSTALLED
from coopfed.v1 import benchmark_pb2, benchmark_pb2_grpc, common_pb2, member_pb2

_HOME_LABELS = {
    "household_size": "people",
    "heating": "heating",
    "has_pv": "solar panels",
    "has_battery": "battery",
    "home_type": "home type",
    **INSTALLED,
}
HINT = "run `coopfed member register` first, or give --credentials FILE"


def add_parsers(commands: argparse._SubParsersAction) -> None:
    home = commands.add_parser(
        "home",
        help="what you declare about your home, to be compared with similar homes",
        description="Without options, shows what you declared; with options, changes only those. "
        "Every field is optional; --clear withdraws all of it.",
    )
    home.add_argument("--people", type=int, metavar="N", help="people living there (1-12)")
    home.add_argument("--heating", choices=HEATING)
    home.add_argument("--home-type", choices=HOME_TYPES)
    home.add_argument("--pv", action=argparse.BooleanOptionalAction, help="solar panels")
    home.add_argument("--battery", action=argparse.BooleanOptionalAction, help="a home battery")
    for field, words in INSTALLED.items():
        flag = "--" + field.replace("_", "-")
        home.add_argument(flag, type=float, metavar="N", dest=field, help=f"{words} (0-{MAX_INSTALLED:g})")
    home.add_argument("--clear", action="store_true", help="withdraw everything you declared")
    add_json_option(home)
    add_json_option(
        commands.add_parser("benchmark", help="how your use compares with similar homes in the co-op")
    )


def _stub(args: argparse.Namespace) -> tuple[benchmark_pb2_grpc.BenchmarkServiceStub, tuple]:
    creds = Credentials.load(args.credentials, HINT)
    return benchmark_pb2_grpc.BenchmarkServiceStub(creds.channel()), bearer(creds.token)


def home(args: argparse.Namespace, console: Console) -> int:
    stub, md = _stub(args)
    declared = stub.GetHome(benchmark_pb2.GetHomeRequest(), metadata=md)
    changes = {
        "household_size": args.people, "heating": args.heating, "home_type": args.home_type,
        "has_pv": args.pv, "has_battery": args.battery, **{f: getattr(args, f) for f in INSTALLED},
    }  # fmt: skip
    if args.clear or any(v is not None for v in changes.values()):
        new = member_pb2.Home() if args.clear else declared
        for key, value in changes.items():
            if value is not None:
                setattr(new, key, value)
        declared = stub.SetHome(new, metadata=md)
    record = MessageToDict(declared, preserving_proto_field_name=True)
    show_record(
        console, {k: record.get(k, "not declared") for k in _HOME_LABELS}, _HOME_LABELS, as_json=args.json
    )
    return 0


def comparisons_summary(entries: Sequence[member_pb2.DataAccess]) -> list[dict[str, Any]]:
    """Benchmark entries as one line a month: "your data was part of 12 comparisons"."""
    months: dict[str, list[member_pb2.DataAccess]] = {}
    for e in entries:
        if e.flow == common_pb2.FLOW_MEMBER_TO_MEMBER:
            months.setdefault(arrow.get(e.at.seconds).to(DEFAULT_TZ).format("MMMM YYYY"), []).append(e)
    return [
        {
            "at": max(e.at.ToDatetime(tzinfo=UTC) for e in found),
            "organisation": "members of the co-op (not named)",
            "purpose": f"your data was part of {len({e.release_id for e in found})} comparisons in {month}",
            "flow": "member_to_member",
            "to_whom": "other members",
            "dataset": ", ".join(sorted({e.dataset for e in found})),
            "comparisons": len({e.release_id for e in found}),
            "from": local_day(min(e.period.start_unix for e in found)),
            "to": local_day(max(e.period.end_unix for e in found) - 1),
        }
        for month, found in months.items()
    ]


def benchmark(args: argparse.Namespace, console: Console) -> int:
    stub, md = _stub(args)
    got = stub.Compare(benchmark_pb2.CompareRequest(), metadata=md)
    if args.json:
        print_json(
            MessageToDict(got, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        )
        return 0
    similar = ", ".join(got.similar_by) or "all homes of the co-op"
    console.print(
        f"This {got.season} ({local_day(got.period.start_unix)} to {local_day(got.period.end_unix - 1)}), "
        f"compared with {got.similar_homes} similar homes ({similar}):",
        markup=False,
    )
    for s in [*got.by_time_of_day, *got.by_month]:
        console.print(f"  {s.label}: {s.summary}", markup=False)
    console.print(f"The co-op's busiest time: {got.peak_start}-{got.peak_end}.", markup=False)
    console.print(got.suggestion, markup=False)
    console.print(f"Your data was part of {got.comparisons_this_month} comparisons this month.", markup=False)
    return 0
