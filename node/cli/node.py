"""`coopfed node ...` and `coopfed demo`: set up, run and show a co-op's node."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from rich.console import Console

from coopfed.node import operations
from coopfed.node.app import serve
from coopfed.node.cli.output import print_json
from coopfed.node.logs import configure_logging
from coopfed.node.runtime import init_node
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
    status = commands.add_parser(
        "status", help="is it serving, its policy, members, readings, peers, disk use, forecasts"
    )
    status.add_argument("--config", type=Path, required=True, help="the node's coopfed.toml")
    status.add_argument("--json", action="store_true", help="print JSON instead of words")
    status.set_defaults(func=lambda args: _node_status(args, console))
    backup = commands.add_parser("backup", help="copy the database to FILE, also while the node serves")
    backup.add_argument("file", type=Path, metavar="FILE", help="where to write the copy (mode 0600)")
    backup.add_argument("--config", type=Path, required=True, help="the node's coopfed.toml")
    backup.add_argument("--force", action="store_true", help="replace FILE if it exists")
    backup.set_defaults(func=lambda args: _node_backup(args, console))
    restore = commands.add_parser(
        "restore", help="put a backup in place of the database of a stopped node (the old one is kept)"
    )
    restore.add_argument("file", type=Path, metavar="FILE", help="a file written by `coopfed node backup`")
    restore.add_argument("--config", type=Path, required=True, help="the node's coopfed.toml")
    restore.set_defaults(func=lambda args: _node_restore(args, console))
    move = commands.add_parser(
        "migrate", help="move a stopped node's database into an empty PostgreSQL database, verified"
    )
    move.add_argument("--to", required=True, metavar="URL", help="postgresql://user@host/database")
    move.add_argument("--config", type=Path, required=True, help="the node's coopfed.toml")
    move.set_defaults(func=lambda args: _node_migrate(args, console))


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

    asyncio.run(serve(settings, started))
    return 0


def _node_status(args: argparse.Namespace, console: Console) -> int:
    status = operations.node_status(load_settings(args.config))
    if args.json:
        print_json(status.as_dict())
        return 0
    if status.serving:
        where = f" at {status.address}" if status.address else ""
        answers = "answers health checks" if status.answers else "does NOT answer health checks"
        serving = f"yes, process {status.pid}{where}, {answers}"
    else:
        serving = "no"
    rows = [
        ("node", f"{status.node_id} ({status.name})"),
        ("folder", status.folder),
        ("serving", serving),
        ("policy revision", status.revision[:12] or "known once the node has verified its bundle"),
        ("members", f"{status.members} admitted, {status.applicants} waiting for the board"),
        ("newest reading", status.newest_reading),
        ("peers pinned", ", ".join(status.peers) or "none"),
        ("disk use", _size(status.disk_bytes)),
        ("forecasts", status.forecast),
        ("training", status.training),
    ]
    for label, value in rows:
        console.print(f"{label + ':':<17}{value}", highlight=False, markup=False)
    return 0


def _node_backup(args: argparse.Namespace, console: Console) -> int:
    size = operations.backup(load_settings(args.config), args.file, force=args.force)
    copy = args.file.resolve()
    console.print(
        f"backed up the database to {copy} ({_size(size)}, checked)", highlight=False, soft_wrap=True
    )
    return 0


def _node_restore(args: argparse.Namespace, console: Console) -> int:
    kept = operations.restore(load_settings(args.config), args.file)
    replaced = f"; the one it replaced is kept as {kept}" if kept else ""
    console.print(f"restored the database from {args.file}{replaced}", highlight=False, soft_wrap=True)
    return 0


def _node_migrate(args: argparse.Namespace, console: Console) -> int:
    done = operations.move_to_postgresql(load_settings(args.config), args.config, args.to)
    console.print(
        f"copied and checked {sum(done.rows.values())} rows in {len(done.rows)} tables: the readings of "
        f"{done.members} members ({done.readings} readings) match, and the decision log's chain of "
        f"{done.log_entries} entries verifies on the copy",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"{args.config} now names the PostgreSQL database; the SQLite file is kept as it was",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def _size(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError  # the loop returns at GB


def _demo(args: argparse.Namespace, console: Console) -> int:
    from coopfed.node.cli.demo import run_demo

    return run_demo(args.dir, once=args.once, console=console)
