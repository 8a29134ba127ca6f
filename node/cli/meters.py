"""`coopfed meters import FILE`: the board imports its meter-data provider's half-hourly export.

The file is a CSV with the header meter_id,dataset,period_start,kwh: every row is checked before
anything is sent (a problem is named by line and column), then it goes to the node's bulk feed
(MeterDataService.ImportReadings) in messages of IMPORT_ROWS readings.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from rich.console import Console

from coopfed.node.cli.board import DEFAULT_BOARD
from coopfed.node.cli.common import add_credentials_option, bind
from coopfed.node.cli.upload import _fail, _kwh, _period, _zone
from coopfed.node.client import Credentials, bearer
from coopfed.node.errors import InvalidArgument, UsageError
from coopfed.node.localtime import DEFAULT_TZ
from coopfed.node.meters import normal_meter_id
from coopfed.node.model import DATASETS
from coopfed.node.readings import BadReading, validate_batch
from coopfed.v1 import meterdata_pb2, meterdata_pb2_grpc

COLUMNS = ("meter_id", "dataset", "period_start", "kwh")
IMPORT_ROWS = 50_000  # readings per message: well under the node's 4 MB a message


def add_commands(parser: argparse.ArgumentParser, console: Console) -> None:
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    imports = commands.add_parser("import", help="import a meter-data export (CSV) for the co-op's members")
    imports.add_argument("file", type=Path, help=f"CSV with the header {','.join(COLUMNS)}")
    imports.add_argument("--tz", default=DEFAULT_TZ, help=f"the co-op's time zone (default {DEFAULT_TZ})")
    add_credentials_option(imports, DEFAULT_BOARD)
    bind(commands, {"import": _import}, console)


Rows = dict[str, tuple[list[str], list[int], list[float], list[int]]]  # dataset: meters, periods, kWh, lines


def read_export(path: Path, tz: str) -> Rows:
    """Every row of the export, by dataset, checked as the node checks them."""
    zone = _zone(tz)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path} as UTF-8 text: {exc}", code="cli.csv") from exc
    rows = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(rows, [])]
    if header != list(COLUMNS):
        _fail(path, 1, None, f"the first line must be the header {','.join(COLUMNS)}")
    found: Rows = {}
    for line, row in enumerate(rows, start=2):
        if not "".join(row).strip():
            continue
        if len(row) != len(COLUMNS):
            _fail(path, line, None, f"{len(row)} columns where {len(COLUMNS)} are expected")
        meter, dataset, at, kwh = (cell.strip() for cell in row)
        meters, periods, values, lines = found.setdefault(dataset, ([], [], [], []))
        try:
            normal = normal_meter_id(meter)
        except InvalidArgument:
            normal = ""
        if not normal:
            _fail(path, line, "meter_id", f"{meter!r} is not a meter id (an MPAN or a meter serial)")
        meters.append(normal)
        periods.append(_period(path, line, at, zone))
        values.append(_kwh(path, line, kwh))
        lines.append(line)
    if not found:
        _fail(path, None, None, "no readings below the header")
    for index, (dataset, (_, periods, values, lines)) in enumerate(found.items()):
        try:
            validate_batch(index, dataset, np.asarray(periods, np.int64), np.asarray(values, float))
        except BadReading as exc:
            _fail(path, lines[exc.row], exc.column.removesuffix("_unix"), exc.problem)
        except InvalidArgument:  # the dataset itself
            _fail(path, lines[0], "dataset", f"{dataset!r} is not a dataset; known: {', '.join(DATASETS)}")
    return found


def _import(args: argparse.Namespace, console: Console) -> int:
    found = read_export(args.file, args.tz)  # every row checked before anything is sent
    creds = Credentials.load(args.credentials, "run `coopfed review token` on the node's machine")
    stub = meterdata_pb2_grpc.MeterDataServiceStub(creds.channel())
    messages = (
        meterdata_pb2.MeterReadings(
            dataset=dataset,
            meter_ids=meters[i : i + IMPORT_ROWS],
            period_start_unix=periods[i : i + IMPORT_ROWS],
            kwh=values[i : i + IMPORT_ROWS],
        )
        for dataset, (meters, periods, values, _) in found.items()
        for i in range(0, len(meters), IMPORT_ROWS)
    )
    s = stub.ImportReadings(messages, metadata=bearer(creds.token))
    console.print(
        f"stored {s.inserted} new readings, replaced {s.replaced}, for {s.members} members", markup=False
    )
    if s.unmatched_readings:
        console.print(
            f"not stored: {s.unmatched_readings} readings of {s.unmatched_meters} meters that no member "
            "of the co-op holds (unknown meters, or their member left)",
            markup=False,
        )
    return 0
