"""`coopfed opendata publish`: the co-op's k-anonymous open-data package, on the node's folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from coopfed.node.cli.common import NodeAction, add_period_options, bind_on_node, period_of, period_text
from coopfed.node.cli.output import add_json_option, show_fields
from coopfed.node.errors import UsageError
from coopfed.node.opendata.publish import DEFAULT_DAYS
from coopfed.node.runtime import Node
from coopfed.node.services import publisher_of


def add_commands(parser: argparse.ArgumentParser, console: Console) -> None:
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    pub = commands.add_parser(
        "publish",
        help="write a Frictionless Data Package of the neighbourhood's half-hourly profiles",
        description="Only members whose consent allows open data contribute; half-hours with fewer "
        f"contributing members than the co-op's k are left out. Default: the last {DEFAULT_DAYS} days held.",
    )
    pub.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="folder to write the package into"
    )
    pub.add_argument(
        "--epsilon",
        type=float,
        help="differentially private, with this epsilon, charged to every member's yearly budget",
    )
    add_period_options(pub, required=False)
    add_json_option(pub)
    actions: dict[str, NodeAction] = {"publish": _publish}
    bind_on_node(commands, actions, console)


def _publish(args: argparse.Namespace, node: Node, console: Console) -> int:
    if (args.start is None) != (args.end is None):
        raise UsageError("give --from and --to together, or neither", code="cli.period")
    period = period_of(args) if args.start else None
    done = publisher_of(node).publish(args.out, period, epsilon=args.epsilon)
    parquet = "written" if done.parquet else "not written: install pyarrow for Parquet beside the CSV files"
    fields = [
        ("publication_id", "publication", done.publication_id),
        ("folder", "written to", str(done.folder)),
        ("files", "files", ", ".join(done.files)),
        ("days", "days", period_text(*done.period)),
        ("cells_released", "half-hours published", done.cells_released),
        ("cells_suppressed", "half-hours withheld (fewer than k)", done.cells_suppressed),
        ("contributors", "members contributing", done.contributors),
        ("parquet", "Parquet", parquet),
        ("decision_id", "decision", done.decision_id),
    ]
    show_fields(console, fields, as_json=args.json)
    return 0
