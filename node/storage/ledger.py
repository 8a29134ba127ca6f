"""The ledger's storage interface: settlement runs, balanced transactions, accounts, journal lines."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from coopfed.node.storage.governance import Events

MEMBER_KINDS = ("local_bought", "local_credit", "grid_import", "grid_export")
"""A member's accounts: local energy bought, credit earned for local energy, grid import, grid export."""
COOP_KINDS = ("local_sales", "local_payouts", "grid_purchases", "grid_sales")
"""The co-op's: local energy charged to buyers, paid out to generators; bought from, sold to the grid."""


class PeriodReadings(NamedTuple):
    """kWh per member (rows, by member id) and period (columns) of each dataset; NaN: no reading."""

    member_ids: tuple[str, ...]
    periods: np.ndarray  # int64 unix period starts
    kwh: dict[str, np.ndarray]  # dataset -> float64 (members x periods)


@dataclass(frozen=True)
class NewTransaction:
    """One period's settlement or correction. `accounts` index the run's accounts: member i's
    account of kind k is `i * 4 + k` (MEMBER_KINDS order), the co-op's kind j is `4 * n + j`."""

    period_start: int
    status: str  # provisional | final
    corrects: int | None  # txn_key of the period's latest transaction, for a correction
    missing: int
    accounts: np.ndarray  # int64
    pence: np.ndarray  # int64, sums to 0
    wh: np.ndarray  # int64


@dataclass(frozen=True)
class Run:
    run_id: str
    at: str  # ISO 8601 UTC
    period_start: int
    period_end: int
    decision_id: str
    revision: str
    terms_json: str


class PeriodState(NamedTuple):
    latest: int  # txn_key of the period's latest transaction
    status: str


class JournalLine(NamedTuple):
    txn: int
    period_start: int
    status: str
    corrects: int | None
    run_id: str
    account: str  # "coop", a member id, or "erased-<account number>"
    kind: str
    pence: int
    wh: int


class LedgerStore(abc.ABC):
    """The ledger beside a node's Store. History is append-only; every write is one transaction."""

    @abc.abstractmethod
    def period_readings(self, start: int, end: int) -> PeriodReadings:
        """Readings of the members (not erased) holding any reading in [start, end)."""

    @abc.abstractmethod
    def period_states(self, start: int, end: int) -> dict[int, PeriodState]:
        """Each settled period in [start, end): its latest transaction and status."""

    @abc.abstractmethod
    def posted(
        self, member_ids: Sequence[str], periods: Sequence[int]
    ) -> dict[int, dict[int, tuple[int, int]]]:
        """Net (pence, wh) per period and account index (as NewTransaction numbers them for
        `member_ids`) over every transaction of those periods; accounts of others are left out."""

    @abc.abstractmethod
    def post(
        self, run: Run, member_ids: Sequence[str], transactions: Sequence[NewTransaction], log: Events
    ) -> int:
        """Store the run, its transactions and the decision-log events that explain it; returns how
        many transactions were posted. InvalidData (nothing written) for an unbalanced one."""

    @abc.abstractmethod
    def journal(self, start: int, end: int, member_id: str | None = None) -> Iterator[JournalLine]:
        """Postings of periods in [start, end), by transaction; only the member's where given."""

    @abc.abstractmethod
    def totals(self, start: int, end: int, member_id: str | None = None) -> dict[str, tuple[int, int]]:
        """Net (pence, wh) per account kind over periods in [start, end): of the member's
        accounts where given, else of the co-op's and all members' accounts together."""

    @abc.abstractmethod
    def unbalanced(self) -> list[int]:
        """Transactions whose postings do not sum to zero (none, unless the file was edited)."""

    @abc.abstractmethod
    def runs(self, limit: int = 20) -> list[Run]:
        """The latest runs, newest first."""
