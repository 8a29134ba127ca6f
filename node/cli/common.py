"""What the CLI's command groups share: one way to bind actions, and the options every group spells alike."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import arrow
import grpc
from rich.console import Console

from coopfed.node.client import Credentials, channel
from coopfed.node.errors import UsageError
from coopfed.node.localtime import DEFAULT_TZ, local_day
from coopfed.node.runtime import Node, open_node
from coopfed.node.settings import Settings, load_settings

ClientAction = Callable[[argparse.Namespace, Console], int]
"""A command that talks to a node over gRPC."""
NodeAction = Callable[[argparse.Namespace, Node, Console], int]
"""A command run on the node's own machine, with its folder opened from `--config`."""

DEFAULT_CONFIG = Path("coopfed.toml")


def bind(commands: Any, actions: Mapping[str, ClientAction], console: Console) -> None:
    """Each sub-command runs its action with the parsed arguments and the console."""
    for name, action in actions.items():
        commands.choices[name].set_defaults(func=lambda args, action=action: action(args, console))


def bind_on_node(commands: Any, actions: Mapping[str, NodeAction], console: Console) -> None:
    """As `bind`, for actions on the node's own folder: each takes `--config` after the action."""

    def opened(args: argparse.Namespace, action: NodeAction) -> int:
        with open_node(node_settings(args.config)) as node:
            return action(args, node, console)

    for name, action in actions.items():
        if "--config" not in commands.choices[name]._option_string_actions:  # a group may add its own
            add_config_option(commands.choices[name])
        commands.choices[name].set_defaults(func=lambda args, action=action: opened(args, action))


def add_config_option(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """`--config FILE`: the node's coopfed.toml, in the same place for every group."""
    default = None if required else DEFAULT_CONFIG
    parser.add_argument(
        "--config", type=Path, default=default, required=required, help="the node's coopfed.toml"
    )


def node_settings(config: Path) -> Settings:
    """The node's settings from `--config`; a path that is not a file is the user's to fix (exit 2)."""
    if not config.is_file():
        raise UsageError(
            f"no node configuration at {config}: give --config FILE (`coopfed node init` writes one)",
            code="cli.config",
        )
    return load_settings(config)


def add_credentials_option(parser: argparse.ArgumentParser, default: Path, *, saves: bool = False) -> None:
    """`--credentials FILE` (saved token); a command that saves one also takes `--force`."""
    help_text = "where to save the token" if saves else "the saved token"
    parser.add_argument("--credentials", type=Path, default=default, help=f"{help_text} (default {default})")
    if saves:
        parser.add_argument("--force", action="store_true", help="replace an existing credential file")


def saved_credentials(args: argparse.Namespace, node: str, subject: str, token: str) -> Credentials:
    """A credential to save, with how the node was trusted (`--ca`, `--fingerprint`) kept for later."""
    ca = str(args.ca.resolve()) if getattr(args, "ca", None) else ""
    creds = Credentials(node, subject, token, ca=ca, fingerprint=getattr(args, "fingerprint", "") or "")
    creds.save(args.credentials, force=args.force)
    return creds


def public_channel(args: argparse.Namespace, hint: str) -> grpc.Channel:
    """A channel from `--node/--ca/--fingerprint`, or from the saved credential where --node is not given."""
    if args.node:
        return channel(args.node, ca=args.ca, fingerprint=args.fingerprint)
    return Credentials.load(args.credentials, hint).channel()


def iso_day(text: str) -> date:
    """An argparse type: a day as YYYY-MM-DD, refused in plain words."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD): {text!r}") from None


def add_period_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """`--from DAY --to DAY`: a period of whole days on the co-op's clock, `--to` excluded."""
    parser.add_argument("--from", dest="start", type=iso_day, required=required, help="first day")
    parser.add_argument("--to", dest="end", type=iso_day, required=required, help="first day after it")


def day_start(day: date) -> int:
    """Unix seconds at the start of `day` on the co-op's clock."""
    return int(arrow.get(day, tzinfo=DEFAULT_TZ).timestamp())


def period_of(args: argparse.Namespace) -> tuple[int, int]:
    start, end = day_start(args.start), day_start(args.end)
    if start >= end:
        raise UsageError("--to must be a later day than --from", code="cli.period")
    return start, end


def period_text(start: int, end: int) -> str:
    """'1 Jan 2024 to 31 Jan 2024': the days a period covers, on the co-op's clock."""
    return f"{local_day(start)} to {local_day(end - 1)}"
