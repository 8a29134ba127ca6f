"""The demo's ledger: settle each co-op's weeks, print its totals and one member's statement."""

from __future__ import annotations

from rich.console import Console

from coopfed.node.ledger.money import kwh_text, pounds
from coopfed.node.ledger.run import decide_terms, ledger_of, settle_span
from coopfed.node.ledger.statement import statement
from coopfed.node.runtime import Node


def show_ledger(nodes: list[Node], start: int, end: int, console: Console) -> None:
    """Settle [start, end) on every node; the co-op's totals and its first member's statement."""
    console.print("\n[bold]Local energy ledger[/bold]")
    for node in nodes:
        done = settle_span(node, start, end)
        ledger = ledger_of(node)
        coop = statement(ledger, start, end, None, done.terms)
        console.print(
            f"  {node.node_id}: {done.settled:,} half-hours settled for {done.members} members "
            f"(shared {done.terms.key_title}); {kwh_text(coop.local_bought_wh)} traded locally for "
            f"{pounds(coop.local_bought_pence)}, {coop.coop_local_share:.0%} of demand met locally",
            markup=False,
        )
    node = nodes[0]
    member = next(
        (line.account for line in ledger_of(node).journal(start, end) if line.kind == "local_credit"), None
    )
    if member is None:
        return
    mine = statement(ledger_of(node), start, end, member, decide_terms(node, start, end)[0])
    console.print(f"  statement of {node.node_id} member {member}:", markup=False)
    for label, text in mine.lines().items():
        console.print(f"    {label}: {text}", markup=False)
