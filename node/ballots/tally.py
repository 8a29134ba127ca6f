"""Receipts and counting: what a voter keeps, what the box holds, and the tally published at close.

A receipt is a random secret given only to the voter; the box holds its hash with the choice.
The published tally lists every (receipt hash, choice), so a voter hashes their receipt and
finds their choice among them, and anyone can recount the list against the totals.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from coopfed.node.policy.data_changes import digest

ABSTAIN = "abstain"


def new_receipt() -> str:
    """128 random bits and more: a receipt nobody can guess, so its hash names nobody."""
    return secrets.token_urlsafe(24)


def receipt_hash(ballot_id: str, receipt: str) -> str:
    return hashlib.sha256(f"coopfed-ballot:{ballot_id}:{receipt}".encode()).hexdigest()


@dataclass(frozen=True)
class Rules:
    """How a ballot is decided, read from the policy data's `ballots` section when it opens."""

    quorum_percent: float  # of admitted members, who must take part (abstaining counts)
    majority_percent: float  # of votes cast for or against (abstentions not counted) to pass
    petition_signatures: int  # admitted members whose signatures open a members' proposal
    voting_days: float  # how long a ballot is open unless the board says otherwise
    min_voting_hours: float  # the shortest a ballot may be open

    def to_json(self) -> dict[str, Any]:
        return {
            "quorum_percent": self.quorum_percent, "majority_percent": self.majority_percent,
            "petition_signatures": self.petition_signatures, "voting_days": self.voting_days,
            "min_voting_hours": self.min_voting_hours,
        }  # fmt: skip


def count(
    ballot_id: str,
    proposal: Mapping[str, Any],
    box: Sequence[tuple[str, str]],
    eligible: int,
    closed_at: str,
) -> dict[str, Any]:
    """The tally of a closed ballot: totals, quorum, majority, outcome, and every receipt hash."""
    rules = proposal["rules"]
    choices = [c["key"] for c in proposal["choices"]]
    counts = Counter(choice for _, choice in box)
    voted = len(box)
    quorum_met = eligible > 0 and voted * 100 >= rules["quorum_percent"] * eligible
    deciding = {c: counts[c] for c in choices if c != ABSTAIN}
    cast = sum(deciding.values())
    ranked = sorted(deciding.items(), key=lambda kv: -kv[1])
    top, top_votes = ranked[0] if ranked else ("", 0)
    tied = len(ranked) > 1 and ranked[1][1] == top_votes
    majority = cast > 0 and not tied and top_votes * 100 > rules["majority_percent"] * cast
    winner = top if quorum_met and majority else ""
    change = next((a["patch"] for a in proposal["alternatives"] if a["key"] == winner), None)
    passed = change is not None
    return {
        "ballot_id": ballot_id,
        "proposal_digest": digest(proposal),
        "closed_at": closed_at,
        "eligible": eligible,
        "voted": voted,
        "counts": {c: counts[c] for c in choices},
        "rules": rules,
        "quorum_met": quorum_met,
        "winner": winner,
        "passed": passed,
        "change": change,
        "receipts": [[h, c] for h, c in sorted(box)],
    }


def find_receipt(tally: Mapping[str, Any], ballot_id: str, receipt: str) -> str | None:
    """The choice the published tally counts for this receipt, None where it counts none."""
    wanted = receipt_hash(ballot_id, receipt)
    return next((c for h, c in tally.get("receipts", []) if h == wanted), None)


def recount(tally: Mapping[str, Any]) -> bool:
    """Whether the published totals are the count of the published receipts."""
    counts = Counter(c for _, c in tally.get("receipts", []))
    return all(counts[c] == n for c, n in tally.get("counts", {}).items()) and sum(
        tally.get("counts", {}).values()
    ) == len(tally.get("receipts", []))
