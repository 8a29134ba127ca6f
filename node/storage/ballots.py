"""The ballot storage interface: proposals, petitions, who voted, the ballot box and tallies.

Secrecy is a property of the interface, not only of a backend: no method takes or returns a
member together with a choice. `cast_vote` writes the member to the register of who voted and
(receipt hash, choice) to the box in one transaction; a backend must store the two so that
nothing (a key, a time, an insertion order) pairs them again.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from coopfed.node.storage.governance import Events

Box = Sequence[tuple[str, str]]
"""(receipt hash, choice) pairs, ordered by receipt hash."""


@dataclass(frozen=True)
class BallotRecord:
    """A ballot as stored: its proposal (JSON object), when it opens and closes, and its tally."""

    ballot_id: str
    proposal: dict[str, Any]
    proposed_by: str  # "board:<id>" or "member:<id>"
    created_unix: int
    opens_unix: int | None = None  # None: a petition still gathering signatures
    closes_unix: int | None = None
    closed_unix: int | None = None  # set with the tally, once
    tally: dict[str, Any] | None = None
    tally_digest: str = ""
    signatures: int = 0  # members who signed its petition
    voted: int = 0  # members who voted


@dataclass(frozen=True)
class Closing:
    """What closing a ballot writes: the tally and its digest, and the log events recording it."""

    tally: dict[str, Any]
    digest: str
    log: Events


Counter = Callable[[BallotRecord, Box, int], Closing]
"""Counts a ballot's box, given the number of members eligible when it closes."""


class BallotStore(abc.ABC):
    """Ballots beside a node's Store; every write is one transaction with its log events."""

    @abc.abstractmethod
    def create_ballot(self, ballot: BallotRecord, signer: str, log: Events) -> BallotRecord:
        """Store a new ballot; `signer` (a member id, or "") is its petition's first signature.
        AlreadyExists where the id is taken."""

    @abc.abstractmethod
    def get_ballot(self, ballot_id: str) -> BallotRecord:
        """NotFound where there is none."""

    @abc.abstractmethod
    def list_ballots(self) -> list[BallotRecord]:
        """Every ballot, newest first."""

    @abc.abstractmethod
    def sign_petition(
        self, ballot_id: str, member_id: str, needed: int, opens: int, closes: int, log: Events
    ) -> BallotRecord:
        """Add a member's signature; the signature that makes `needed` opens the ballot from
        `opens` to `closes` (`log` is appended only then). Conflict where the member signed
        already or the ballot is no petition."""

    @abc.abstractmethod
    def cast_vote(self, ballot_id: str, member_id: str, receipt_hash: str, choice: str) -> None:
        """Record that the member voted and put (receipt hash, choice) in the box, together.
        Conflict where the member voted already or the ballot is not open."""

    @abc.abstractmethod
    def has_voted(self, ballot_id: str, member_id: str) -> bool: ...

    @abc.abstractmethod
    def close_ballot(self, ballot_id: str, closed_unix: int, count: Counter) -> BallotRecord:
        """Count the box (with the admitted members now eligible) and store the tally, in the
        transaction that closes the ballot, so no vote lands after it is counted. Conflict
        where it was closed already."""

    @abc.abstractmethod
    def box(self, ballot_id: str) -> list[tuple[str, str]]:
        """The box of a closed ballot, ordered by receipt hash; Conflict while it is open."""

    @abc.abstractmethod
    def record_application(self, ballot_ids: Sequence[str], revision: str, at: int) -> None:
        """Note that the node accepted `revision`, which carries these ballots' changes."""

    @abc.abstractmethod
    def applications(self) -> list[tuple[str, str, int]]:
        """(ballot id, revision, when applied), oldest first."""
