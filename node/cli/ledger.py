"""`coopfed ledger settle | statement | journal`: the co-op's local energy books, on the node's folder."""

from __future__ import annotations

import argparse
from pathlib import Path

import arrow
import numpy as np
from rich.console import Console

from coopfed.node.cli.common import NodeAction, add_period_options, bind_on_node, period_of, period_text
from coopfed.node.cli.output import Col, add_json_option, show, show_fields, show_record
from coopfed.node.errors import NotFound
from coopfed.node.ledger.money import pounds
from coopfed.node.ledger.statement import journal_csv
from coopfed.node.localtime import DEFAULT_TZ
from coopfed.node.runtime import Node
from coopfed.node.services import books_of


def add_commands(parser: argparse.ArgumentParser, console: Console) -> None:
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    settle = commands.add_parser(
        "settle", help="settle the half-hours of whole days (again: post corrections)"
    )
    statement_ = commands.add_parser("statement", help="a member's statement, or the co-op's totals")
    statement_.add_argument("--member", default="", help="the member's id (default: the co-op's totals)")
    journal = commands.add_parser("journal", help="the journal's postings, or a CSV for the treasurer")
    journal.add_argument("--member", default="", help="only this member's postings")
    journal.add_argument("--csv", type=Path, help="write every posting to this CSV file")
    journal.add_argument("--chart", type=Path, help="PNG of the first day's local matching")
    for sub in (settle, statement_, journal):
        add_period_options(sub)
        add_json_option(sub)
    actions: dict[str, NodeAction] = {"settle": _settle, "statement": _statement, "journal": _journal}
    bind_on_node(commands, actions, console)


def _settle(args: argparse.Namespace, node: Node, console: Console) -> int:
    start, end = period_of(args)
    done = books_of(node).settle(start, end)
    fields = [
        ("days", "days", period_text(start, end)),
        ("key", "local energy shared", done.terms.key_title),
        ("members", "members", done.members),
        ("settled", "half-hours settled", done.settled),
        ("corrected", "corrections posted", done.corrected),
        ("provisional", "still provisional", done.provisional),
        ("terms_changed", "prices or key changed", done.terms_changed),
        ("decision_id", "decision", done.decision_id),
        ("revision", "policy revision", done.revision),
    ]
    show_fields(console, fields, as_json=args.json)
    return 0


def _statement(args: argparse.Namespace, node: Node, console: Console) -> int:
    start, end = period_of(args)
    made = books_of(node).statement(start, end, args.member)
    if args.json:
        show_record(console, made.to_dict(), {}, as_json=True)
        return 0
    console.print(f"statement of {made.account} for {period_text(start, end)}", markup=False)
    lines = made.lines()
    show_record(console, lines, {k: k for k in lines}, as_json=False)
    return 0


def _journal(args: argparse.Namespace, node: Node, console: Console) -> int:
    start, end = period_of(args)
    lines = list(books_of(node).ledger.journal(start, end, args.member or None))
    if args.member and not lines:
        raise NotFound(f"no postings of member {args.member!r} in those days", code="ledger.no_postings")
    if args.csv:
        args.csv.write_text(journal_csv(lines, _date_time), encoding="utf-8")
        console.print(f"{len(lines)} postings written to {args.csv}", markup=False)
    if args.chart:
        day_end = min(end, start + 86_400)
        periods = np.arange(start, day_end, 1800)
        title = f"local matching, {period_text(start, day_end)}"
        from coopfed.node.ledger.chart import day_matching, plot_day  # matplotlib: only for a chart

        plot_day(day_matching(lines, periods), args.chart, title=title, tz=DEFAULT_TZ)
        console.print(f"chart written to {args.chart}", markup=False)
    if args.csv or args.chart:
        return 0
    records = [
        {"when": " ".join(_date_time(x.period_start)), "txn": x.txn, "status": x.status,
         "corrects": x.corrects, "account": x.account, "kind": x.kind.replace("_", " "),
         "amount": pounds(x.pence), "kwh": f"{x.wh / 1000:.3f}"}
        for x in lines
    ]  # fmt: skip
    columns = [
        Col("when", "half-hour"), Col("txn", "transaction", is_id=True), Col("status", "status"),
        Col("corrects", "corrects"), Col("account", "account", is_id=True), Col("kind", "account kind"),
        Col("amount", "debit (+) / credit (-)"), Col("kwh", "kWh"),
    ]  # fmt: skip
    show(console, records, columns, as_json=args.json, empty="no postings in those days")
    return 0


def _date_time(unix: int) -> tuple[str, str]:
    local = arrow.get(unix).to(DEFAULT_TZ)
    return local.format("YYYY-MM-DD"), local.format("HH:mm")
