"""Statements: a member's month from their own accounts, beside the co-op's totals only.

A statement is built from the journal, never from other members' readings: a member sees their
own energy and money, and of the neighbourhood only its totals (demand met locally).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from coopfed.node.ledger.money import kwh_text, pot, pounds
from coopfed.node.ledger.terms import Terms
from coopfed.node.storage.ledger import JournalLine, LedgerStore


@dataclass(frozen=True)
class Statement:
    account: str  # a member id, or "coop" for the co-op's totals
    period_start: int
    period_end: int
    local_bought_wh: int
    local_bought_pence: int
    local_sold_wh: int
    credits_pence: int  # earned for local energy (a positive amount)
    grid_import_wh: int
    grid_import_pence: int
    grid_export_wh: int
    grid_export_pence: int  # earned from the grid (positive)
    net_pence: int  # what the member owes for the span (negative: is owed)
    grid_only_pence: int  # the same energy bought from and sold to the grid at the same prices
    saved_pence: int
    coop_local_share: float  # of the neighbourhood's demand met locally, 0-1 (a ratio, not money)
    provisional_periods: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> dict[str, str]:
        """The statement in words, as the CLI prints it."""
        return {
            "energy bought locally": _for(self.local_bought_wh, self.local_bought_pence),
            "credits earned": _for(self.local_sold_wh, self.credits_pence),
            "bought from the grid": _for(self.grid_import_wh, self.grid_import_pence),
            "sold to the grid": _for(self.grid_export_wh, self.grid_export_pence),
            "to pay" if self.net_pence >= 0 else "to receive": pounds(abs(self.net_pence)),
            "saved against the grid alone": pounds(self.saved_pence),
            "neighbourhood demand met locally": f"{self.coop_local_share:.0%}",
            "provisional half-hours": str(self.provisional_periods),
        }


def _for(wh: int, pence: int) -> str:
    return f"{pounds(pence)} for {kwh_text(wh)}"


def statement(ledger: LedgerStore, start: int, end: int, member_id: str | None, terms: Terms) -> Statement:
    """The member's statement (or the co-op's with member_id None) for periods in [start, end)."""
    mine = ledger.totals(start, end, member_id)
    coop = mine if member_id is None else ledger.totals(start, end)

    def get(kind: str) -> tuple[int, int]:
        return mine.get(kind, (0, 0))

    (bp, bw), (cp, cw), (ip, iw), (ep, ew) = (
        get(k) for k in ("local_bought", "local_credit", "grid_import", "grid_export")
    )
    net = bp + cp + ip + ep
    grid_only = pot(bw + iw, terms.import_mp) - pot(cw + ew, terms.export_mp)
    local = coop.get("local_sales", (0, 0))[1]
    demand = local + coop.get("grid_purchases", (0, 0))[1]
    provisional = sum(1 for s in ledger.period_states(start, end).values() if s.status == "provisional")
    return Statement(
        member_id or "coop", start, end, bw, bp, cw, -cp, iw, ip, ew, -ep, net, grid_only, grid_only - net,
        local / demand if demand else 0.0, provisional,
    )  # fmt: skip


CSV_COLUMNS = (
    "date",
    "time",
    "transaction",
    "status",
    "corrects",
    "account",
    "kind",
    "debit",
    "credit",
    "kwh",
)


def journal_csv(lines: Iterable[JournalLine], when: Callable[[int], tuple[str, str]]) -> str:
    """The journal as CSV a treasurer imports: one posting a row, debit and credit in pounds."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for line in lines:
        amount = f"{abs(line.pence) // 100}.{abs(line.pence) % 100:02d}"
        writer.writerow(
            (
                *when(line.period_start), line.txn, line.status, line.corrects or "",
                line.account, line.kind, amount if line.pence > 0 else "", amount if line.pence < 0 else "",
                format(Decimal(line.wh) / 1000, "f"),
            )
        )  # fmt: skip
    return out.getvalue()
