"""Presentation shared by the CLI's command groups."""

from __future__ import annotations

from rich.table import Column


def id_column(header: str) -> Column:
    """Ids are copied into other commands: a table never cuts or wraps them."""
    return Column(header, no_wrap=True, min_width=len(header))
