"""The `coopfed` command line: one module per command group, one entry point."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import grpc
from rich.console import Console

from coopfed.node.cli import federation, forecast, governance, member, node, policy
from coopfed.node.errors import CoopfedError
from coopfed.node.logs import configure_logging

console = Console()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging("info" if args.verbose else "warning")
    try:
        return args.func(args)
    except CoopfedError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        return 2
    except grpc.RpcError as exc:
        console.print(f"[red]{exc.code().name}:[/red] {exc.details()}")
        return 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coopfed", description="Policy-as-code federation for data co-ops.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    groups = parser.add_subparsers(required=True, metavar="COMMAND")
    node.add_commands(groups.add_parser("node", help="set up and run a co-op's node"), console)
    member.add_commands(groups.add_parser("member", help="a member's own data and consent"), console)
    policy.add_commands(
        groups.add_parser("policy", help="the board: test, check, diff, sign, reload"), console
    )
    federation.add_commands(
        groups.add_parser("federation", help="join peer co-ops, grant and fetch aggregates"), console
    )
    governance.add_commands(groups, console)
    forecast.add_commands(
        groups.add_parser("forecast", help="train, backtest and run the co-op's forecaster"), console
    )
    node.add_demo(groups.add_parser("demo", help="a node on embedded defaults with a sample member"), console)
    return parser
