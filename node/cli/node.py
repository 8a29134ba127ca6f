"""`coopfed node ...` and `coopfed demo`: set up, run and show a co-op's node."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from rich.console import Console

from coopfed.node.logs import configure_logging
from coopfed.node.runtime import init_node, open_node
from coopfed.node.server import serve
from coopfed.node.settings import load_settings


def add_commands(parser: argparse.ArgumentParser, console: Console) -> None:
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    init = commands.add_parser("init", help="create a config file, keys and a database")
    init.add_argument("--dir", type=Path, default=Path("."), help="the node's folder")
    init.add_argument("--id", default="coop", help="the co-op's id in the federation")
    init.add_argument("--name", default="Energy co-op", help="the co-op's name")
    init.add_argument("--listen", default="127.0.0.1:50051", help="host:port to serve on")
    init.add_argument(
        "--policies", type=Path, metavar="DIR", help="copy the policies from DIR, not coopfed's defaults"
    )
    init.set_defaults(func=lambda args: _node_init(args, console))
    run = commands.add_parser("serve", help="serve until SIGTERM or SIGINT")
    run.add_argument("--config", type=Path, required=True, help="the node's coopfed.toml")
    run.set_defaults(func=lambda args: _node_serve(args, console))


def add_demo(parser: argparse.ArgumentParser, console: Console) -> None:
    parser.add_argument("--dir", type=Path, default=Path("var/demo"), help="where the demo node lives")
    parser.add_argument("--once", action="store_true", help="set up, show, and exit instead of serving")
    parser.set_defaults(func=lambda args: _demo(args, console))


def _node_init(args: argparse.Namespace, console: Console) -> int:
    config = init_node(args.dir, node_id=args.id, name=args.name, listen=args.listen, policies=args.policies)
    console.print(f"created node [bold]{args.id}[/bold]: config {config}")
    console.print(f"start it with: coopfed node serve --config {config}")
    return 0


def _node_serve(args: argparse.Namespace, console: Console) -> int:
    settings = load_settings(args.config)
    level = "info" if args.verbose and settings.log.level in ("warning", "error") else settings.log.level
    configure_logging(level, settings.log.format)

    def started(port: int) -> None:
        console.print(f"node [bold]{settings.node.id}[/bold] serving on port {port}", highlight=False)
        sys.stdout.flush()  # a supervisor or test may be waiting for this line on a pipe

    with open_node(settings) as node:
        asyncio.run(serve(node, started))
    return 0


def _demo(args: argparse.Namespace, console: Console) -> int:
    from coopfed.node.demo import run_demo

    return run_demo(args.dir, once=args.once, console=console)
