"""How every command prints: a table or `--json`, text never read as markup, times on the co-op's clock."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

from rich.console import Console
from rich.table import Table

from coopfed.node.localtime import local_time


def make_console() -> Console:
    """Colour and layout for a terminal; piped output is never wrapped, so scripts read whole lines."""
    piped = not sys.stdout.isatty()
    return Console(highlight=False, width=1_000_000 if piped else None, soft_wrap=piped)


def add_json_option(parser: Any) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


@dataclass(frozen=True)
class Col:
    """One column of a table: the record's key and the header people read."""

    key: str
    header: str
    is_id: bool = False  # ids are copied into other commands: never cut or wrapped


def show(
    console: Console,
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[Col],
    *,
    as_json: bool,
    empty: str,
    title: str | None = None,
) -> None:
    """A list as a table (or `empty` when there is none), or as a JSON array with every key."""
    if as_json:
        print_json(list(records))
        return
    if not records:
        console.print(empty, markup=False)
        return
    table = Table(title=title)
    for c in columns:
        table.add_column(c.header, no_wrap=c.is_id, min_width=len(c.header) if c.is_id else None)
    for r in records:
        table.add_row(*(cell(r.get(c.key)) for c in columns))
    console.print(table)


def show_record(
    console: Console, record: Mapping[str, Any], labels: Mapping[str, str], *, as_json: bool
) -> None:
    """One thing as 'label: value' lines (the keys in `labels`), or as a JSON object with every key."""
    if as_json:
        print_json(record)
        return
    width = max(len(label) for label in labels.values())
    for key, label in labels.items():
        console.print(f"{label + ':':<{width + 1}} {cell(record.get(key))}", markup=False)


def show_fields(console: Console, fields: Sequence[tuple[str, str, Any]], *, as_json: bool) -> None:
    """One thing from (key, label, value) fields: 'label: value' lines, or a JSON object by key."""
    record = {key: value for key, _, value in fields}
    show_record(console, record, {key: label for key, label, _ in fields}, as_json=as_json)


def cell(value: Any) -> str:
    """A value as a person reads it in a table."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return local_time(value)
    if isinstance(value, date):
        return value.strftime("%-d %b %Y")
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value) or "-"
    return str(value)


def print_json(value: Any) -> None:
    """JSON on stdout as it is: no markup, no wrapping, instants in ISO 8601 with their offset."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
