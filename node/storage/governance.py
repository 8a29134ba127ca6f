"""The governance storage interface: organisations, requests, decisions, grants, decision and access logs."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from coopfed.node.storage.base import Member, StorageError
from coopfed.node.storage.records import (
    AccessEntry,
    Assessment,
    DataRequestRecord,
    DecisionFilter,
    GrantRecord,
    Organisation,
    RequestState,
    Review,
    TokenRevocation,
)

Events = Sequence[Mapping[str, Any]]


class GrantKind(StrEnum):
    """Which kind of grant a release ran under: a third party's (governance) or a peer co-op's."""

    GOVERNANCE = "governance"  # in the governance store; its organisation is on record
    FEDERATION = "federation"  # in the federation store; the entry names the peer that received it
    OPEN_DATA = "open_data"  # no grant: a publication, named by its id, received by the public
    BENCHMARK = "benchmark"  # no grant: a comparison among members; who looked is never stored


class Conflict(StorageError):
    """The record is not in the state the change needs (e.g. a request already decided)."""

    code = "conflict"


class LogTampered(StorageError):
    """The decision log's head is not one the node signed: the log was changed behind its back."""

    code = "decision_log.tampered"


# Each dataset released -> its consenting profile ids and its runs [start, end) of half-hours.
ReleasedRuns = Mapping[str, tuple[Sequence[str], Sequence[tuple[int, int]]]]


class GovernanceStore(abc.ABC):
    """Governance state beside a node's Store. Every write is one transaction, and takes the
    decision-log events that explain it, so a state change and its log entries commit together."""

    # decision log
    @abc.abstractmethod
    def append_decisions(self, events: Events) -> list[dict[str, Any]]:
        """Chain `events` onto the log and store them; returns them as stored."""

    @abc.abstractmethod
    def decision_log(self) -> Iterator[str]:
        """Every stored entry, as stored (canonical JSON), in stored order."""

    @abc.abstractmethod
    def decision_entry(self, decision_id: str) -> str:
        """The stored entry (canonical JSON) of one decision, the first if an id repeats;
        NotFound if the log holds none."""

    @abc.abstractmethod
    def decision_log_head(self) -> tuple[int, str]:
        """(seq, hash) of the last entry appended; (0, GENESIS) for an empty log."""

    @abc.abstractmethod
    def signed_head(self) -> str:
        """The node's signed head of its log (see coopfed.node.loghead); "" if none was signed."""

    # witnessing: heads of aligned peers' logs that this node was shown
    @abc.abstractmethod
    def keep_head(self, node_id: str, seq: int, digest: str, signed: str, received_at: datetime) -> None:
        """Keep a verified head of `node_id`'s log (each distinct seq and hash once)."""

    @abc.abstractmethod
    def heads_of(self, node_id: str, limit: int) -> list[str]:
        """The signed heads of `node_id`'s log kept here, highest seq first."""

    # organisations
    @abc.abstractmethod
    def create_organisation(self, org: Organisation, log: Events) -> Organisation: ...

    @abc.abstractmethod
    def get_organisation(self, organisation_id: str) -> Organisation: ...

    @abc.abstractmethod
    def list_organisations(self, *, after: str = "", limit: int | None = None) -> list[Organisation]:
        """In order of registration, those registered after organisation `after` ('' from the first)."""

    @abc.abstractmethod
    def set_verification(
        self, organisation_id: str, verified: bool, note: str, assessment: Assessment, log: Events
    ) -> Organisation: ...

    @abc.abstractmethod
    def decide_admission(self, member_id: str, admit: bool, by: str, reason: str, log: Events) -> Member:
        """The board admits or refuses an applicant (as the member store's admit_member and
        refuse_member do), its decision logged in the same transaction."""

    @abc.abstractmethod
    def track_record(self, organisation_id: str, now: int) -> tuple[int, int]:
        """(grants that ran to expiry unrevoked, grants revoked)."""

    # requests, reviews, grants
    @abc.abstractmethod
    def create_request(
        self, record: DataRequestRecord, grant: GrantRecord | None, assessment: Assessment | None, log: Events
    ) -> None:
        """Store a decided request, its grant if approved, and a fresh assessment if one was made."""

    @abc.abstractmethod
    def get_request(self, request_id: str) -> DataRequestRecord: ...

    @abc.abstractmethod
    def list_requests(
        self,
        *,
        organisation_id: str = "",
        state: RequestState | None = None,
        oldest_first: bool = False,
        after: str = "",
        limit: int | None = None,
    ) -> list[DataRequestRecord]:
        """Newest (or oldest) first, from the one after request `after` ('' from the first)."""

    @abc.abstractmethod
    def record_review(self, request_id: str, review: Review, grant: GrantRecord | None, log: Events) -> None:
        """Conflict unless the request awaits review."""

    @abc.abstractmethod
    def list_decisions(self, filters: DecisionFilter) -> tuple[list[tuple[str, DataRequestRecord]], int, int]:
        """(("policy" | "board", request) newest first, then by who and request id, from the one
        after `filters.after`; board reviews of a proposal, of which agreed)."""

    @abc.abstractmethod
    def get_grant(self, grant_id: str) -> GrantRecord: ...

    @abc.abstractmethod
    def list_grants(
        self, organisation_id: str, *, after: tuple[int, str] | None = None, limit: int | None = None
    ) -> list[GrantRecord]:
        """Newest issued first, then by id, from the one after `after` (issued_at, grant_id)."""

    @abc.abstractmethod
    def revoke_grant(
        self, grant_id: str, reason: str, revoked_by: str, at: datetime, log: Events
    ) -> GrantRecord:
        """Revoke (idempotent: a second revocation keeps the first)."""

    @abc.abstractmethod
    def revocation(self, grant_id: str) -> str | None:
        """The revocation reason of a revoked grant, else None (also for unknown grants)."""

    # revoked credentials (member, organisation and board tokens)
    @abc.abstractmethod
    def revoke_tokens(self, revocation: TokenRevocation, log: Events) -> None:
        """Append a token revocation and its decision-log events in one transaction."""

    @abc.abstractmethod
    def token_revocations(self) -> list[TokenRevocation]:
        """Every token revocation, oldest first."""

    # release
    @abc.abstractmethod
    def members_of_profiles(self, profile_ids: Sequence[str]) -> dict[str, list[str]]:
        """Member ids (not erased) grouped by their current profile."""

    @abc.abstractmethod
    def member_profiles(self, member_ids: Sequence[str]) -> dict[str, str]:
        """Each member's current profile id; erased or unknown members are left out."""

    @abc.abstractmethod
    def contributors(
        self, profile_ids: Sequence[str], dataset: str, runs: Sequence[tuple[int, int]]
    ) -> list[tuple[str, str]]:
        """(member id, profile id) of members of the profiles holding a reading in any run [start, end)."""

    @abc.abstractmethod
    def count_contributors(self, released: ReleasedRuns) -> int:
        """How many members hold a reading in a released run: `released` maps each dataset to its
        consenting profile ids and its runs [start, end); a member in several counts once."""

    @abc.abstractmethod
    def record_access(
        self, rows: Sequence[tuple[str, AccessEntry]], kind: GrantKind = GrantKind.GOVERNANCE
    ) -> dict[str, str]:
        """Append (member id, entry) rows, all under grants of `kind`, to the access log in one
        transaction; returns each member's pseudonym.

        A governance entry's grant must be on record here (its organisation and request are read
        from it); a federation entry names its recipient in `organisation_id` and
        `organisation_name`. Members erased meanwhile are left out of both: their data must not
        be released."""

    @abc.abstractmethod
    def record_release_access(
        self,
        entries: Sequence[tuple[str, AccessEntry, Sequence[tuple[int, int]]]],
        kind: GrantKind = GrantKind.GOVERNANCE,
    ) -> None:
        """Append the release-level entries of a release of aggregates, (profile id, entry, the
        [start, end) spans of its dataset released), in one transaction: each member who was
        in that profile then and holds a reading in a span sees it (`access_for_member`)."""

    @abc.abstractmethod
    def access_for_member(self, member_id: str, limit: int = 100, *, after: int = 0) -> list[AccessEntry]:
        """The member's access-log entries, newest first, from the one before key `after` (0: from
        the newest); none once the member is erased."""
