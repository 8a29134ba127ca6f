"""What the CLI's command groups share: binding actions to sub-commands, and table columns."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Column

from coopfed.node.runtime import Node, open_node
from coopfed.node.settings import load_settings

ClientAction = Callable[[argparse.Namespace, Console], int]
"""A command that talks to a node over gRPC."""
NodeAction = Callable[[argparse.Namespace, Node, Console], int]
"""A command run on the node's own machine, with its folder opened from `--config`."""


def bind(commands: Any, actions: dict[str, ClientAction], console: Console) -> None:
    for name, action in actions.items():
        commands.choices[name].set_defaults(func=lambda args, action=action: action(args, console))


def bind_on_node(commands: Any, actions: dict[str, NodeAction], console: Console) -> None:
    def opened(args: argparse.Namespace, action: NodeAction) -> int:
        with open_node(load_settings(args.config)) as node:
            return action(args, node, console)

    for name, action in actions.items():
        commands.choices[name].set_defaults(func=lambda args, action=action: opened(args, action))


def id_column(header: str) -> Column:
    """Ids are copied into other commands: a table never cuts or wraps them."""
    return Column(header, no_wrap=True, min_width=len(header))
