"""What the portal is built with: the node's stores and policy, and the features its pages call,
bound to the node where the node is composed (`coopfed.node.server.portal_parts`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coopfed.node.auth import Principal
    from coopfed.node.forecast.context import ForecastContext
    from coopfed.node.ledger.terms import Terms
    from coopfed.node.members import ConsentChange
    from coopfed.node.policy.holder import PolicyHolder
    from coopfed.node.portal.accounts import Register
    from coopfed.node.release.benchmark import Report
    from coopfed.node.settings import Settings
    from coopfed.node.storage import ConsentRecord, Member, Store
    from coopfed.node.storage.ballots import BallotRecord, BallotStore
    from coopfed.node.storage.governance import GovernanceStore
    from coopfed.node.storage.ledger import LedgerStore
    from coopfed.node.storage.records import DataRequestRecord, GrantRecord, Outcome


@dataclass(frozen=True)
class PortalParts:
    settings: Settings
    store: Store  # members, readings, homes; the portal's accounts share its connections
    policy: PolicyHolder  # read at each use: a reload swaps its data
    governance: GovernanceStore
    ballots: BallotStore
    ledger: LedgerStore
    forecast: ForecastContext | None
    # members.py: (display name, invitation code), (member, change, withdrawal reason), (member, confirm)
    register: Register
    set_consent: Callable[[str, ConsentChange, str], ConsentRecord]
    export: Callable[[str], tuple[Member, list[ConsentRecord], Iterator]]
    erase: Callable[[str, str], int]
    # the board's: (request, reviewer, outcome, reason), (grant, reason, reviewer),
    # (member, admit, reason, reviewer)
    review: Callable[[str, str, Outcome, str], DataRequestRecord]
    revoke: Callable[[str, str, str], GrantRecord]
    admit: Callable[[str, bool, str, str], tuple[Member, str]]
    # ballots: (ballot), (ballot, now), (who, ballot, choice, now) -> (receipt, its hash), (who, ballot, now)
    ballot: Callable[[str], BallotRecord]
    tally: Callable[[str, int], BallotRecord]
    vote: Callable[[Principal, str, str, int], tuple[str, str]]
    sign: Callable[[Principal, str, int], BallotRecord]
    terms: Callable[[int, int], Terms]  # the ledger's terms for a span, as the policy decides them
    benchmark: Callable[[str], Report]  # the member's comparison with similar homes
