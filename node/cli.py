"""The `coopfed` command line: run a node, act as a member, run the demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
from rich.console import Console

from coopfed.node import cli_federation, cli_forecast, cli_governance, cli_member, cli_policy
from coopfed.node.errors import CoopfedError
from coopfed.node.runtime import init_node, open_node
from coopfed.node.server import serve
from coopfed.node.settings import load_settings

console = Console()
Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
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
    _add_node_commands(groups.add_parser("node", help="set up and run a co-op's node"))
    cli_member.add_commands(groups.add_parser("member", help="a member's own data and consent"), console)
    cli_policy.add_commands(
        groups.add_parser("policy", help="the board: test, check, diff, sign, reload"), console
    )
    federation = groups.add_parser("federation", help="join peer co-ops, grant and fetch aggregates")
    cli_federation.add_commands(federation, console)
    cli_governance.add_commands(groups, console)
    forecast = groups.add_parser("forecast", help="train, backtest and run the co-op's forecaster")
    cli_forecast.add_commands(forecast, console)
    demo = groups.add_parser("demo", help="a node on embedded defaults with a sample member")
    demo.add_argument("--dir", type=Path, default=Path("var/demo"), help="where the demo node lives")
    demo.add_argument("--once", action="store_true", help="set up, show, and exit instead of serving")
    demo.set_defaults(func=_demo)
    return parser


def _add_node_commands(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    init = commands.add_parser("init", help="create a config file, keys and a database")
    init.add_argument("--dir", type=Path, default=Path("."), help="the node's folder")
    init.add_argument("--id", default="coop", help="the co-op's id in the federation")
    init.add_argument("--name", default="Energy co-op", help="the co-op's name")
    init.add_argument("--listen", default="127.0.0.1:50051", help="host:port to serve on")
    init.add_argument("--policies", type=Path, default=Path("policies"), help="the policies folder")
    init.set_defaults(func=_node_init)
    run = commands.add_parser("serve", help="serve until SIGTERM or SIGINT")
    run.add_argument("--config", type=Path, required=True, help="the node's coopfed.toml")
    run.set_defaults(func=_node_serve)


def _node_init(args: argparse.Namespace) -> int:
    config = init_node(args.dir, node_id=args.id, name=args.name, listen=args.listen, policies=args.policies)
    console.print(f"created node [bold]{args.id}[/bold]: config {config}")
    console.print(f"start it with: coopfed node serve --config {config}")
    return 0


def _node_serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)

    def started(port: int) -> None:
        console.print(f"node [bold]{settings.node.id}[/bold] serving on port {port}", highlight=False)
        sys.stdout.flush()  # a supervisor or test may be waiting for this line on a pipe

    with open_node(settings) as node:
        asyncio.run(serve(node, started))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from coopfed.node.demo import run_demo

    return run_demo(args.dir, once=args.once, console=console)


if __name__ == "__main__":
    sys.exit(main())
