"""SQLite backend of the governance store, in the node's database beside the member store."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Any

from coopfed.federation.errors import TokenError
from coopfed.node.decisionlog import GENESIS, link
from coopfed.node.loghead import HeadSigner
from coopfed.node.storage import governance_rows as rows_
from coopfed.node.storage import sqlite_sql as q
from coopfed.node.storage.base import Member, NotFound
from coopfed.node.storage.connection import Connection
from coopfed.node.storage.governance import (
    Conflict,
    Events,
    GovernanceStore,
    GrantKind,
    LogTampered,
    ReleasedRuns,
)
from coopfed.node.storage.records import (
    AccessEntry,
    Assessment,
    DataRequestRecord,
    DecisionFilter,
    GrantRecord,
    Organisation,
    Outcome,
    RequestState,
    Review,
    TokenRevocation,
)
from coopfed.node.storage.sql import EXTENT_BUCKET, SqlStore

Head = tuple[int, str, str | None]  # seq, hash and signed head, as the head row holds them


class SqlGovernanceStore(GovernanceStore):
    """Governance tables in the node's database beside the member store, on its connections,
    so governance writes and member writes are serialised and each sees a consistent snapshot."""

    def __init__(self, store: SqlStore, heads: HeadSigner | None = None) -> None:
        self._store = store
        self.heads = heads  # signs every new head; None for tools that only read (or tests)
        self._written: Head | None = None  # the head this store last committed
        self._writing: Head | None = None  # the head of the transaction under way

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        self._writing = None
        with self._store._write() as conn:
            yield conn
        if self._writing is not None:  # committed
            self._written = self._writing

    def _read(self) -> Any:
        return self._store._read()

    # --- decision log -----------------------------------------------------------------------

    def _append(self, conn: Connection, events: Events) -> list[dict[str, Any]]:
        """Chain onto the recorded head (not the last row: a deleted tail stays a visible gap),
        and sign the new head in the same transaction."""
        heads = self.heads
        row = conn.execute(rows_.SIGNED_HEAD if heads else rows_.HEAD).fetchone()
        seq, head, signed = (*row, None)[:3] if row else (0, GENESIS, None)
        if heads is not None:
            self._check_head(heads, seq, head, signed)
        chained = link((dict(e) for e in events), seq, head)
        if chained:
            conn.executemany(
                "INSERT INTO decision_log (decision_id, entry_json) VALUES (?, ?)",
                [(e["decision_id"], rows_.to_json(e)) for e in chained],
            )
            top = chained[-1]["seq"], chained[-1]["hash"]
            if heads is None:  # a tool without the node's key: the head it leaves is unsigned
                conn.execute(rows_.SET_HEAD, top)
            else:
                self._writing = (*top, heads.sign(*top))
                conn.execute(rows_.SET_SIGNED_HEAD, self._writing)
        return chained

    def _check_head(self, heads: HeadSigner, seq: int, head: str, signed: str | None) -> None:
        """Refuse to chain onto a head this node did not sign: entries appended behind its back
        would otherwise be covered by its next signature."""
        if (seq, head, signed) == self._written or (seq == 0 and signed is None):
            return
        if signed is None and self._written is None:
            return  # a log from before heads were signed: its first signed head starts here
        try:
            claimed = heads.check(signed) if signed else None
        except TokenError:
            claimed = None
        if claimed is None or (claimed.seq, claimed.hash) != (seq, head):
            raise LogTampered(
                f"the decision log's head (entry {seq}) is not one this node signed: the log was "
                "changed outside the node, and no decision is logged onto it; run `coopfed audit verify`"
            )

    def append_decisions(self, events: Events) -> list[dict[str, Any]]:
        with self._write() as conn:
            return self._append(conn, events)

    def decision_log(self) -> Iterator[str]:
        with self._read() as conn:
            conn.execute("BEGIN")
            cursor = conn.execute("SELECT entry_json FROM decision_log ORDER BY position")
            while rows := cursor.fetchmany(1000):
                yield from (entry for (entry,) in rows)

    def decision_entry(self, decision_id: str) -> str:
        with self._read() as conn:
            row = conn.execute(rows_.DECISION_BY_ID, (decision_id,)).fetchone()
        if row is None:
            raise NotFound(f"no decision {decision_id!r} in the decision log")
        return row[0]

    def decision_log_head(self) -> tuple[int, str]:
        with self._read() as conn:
            row = conn.execute(rows_.HEAD).fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    def signed_head(self) -> str:
        with self._read() as conn:
            row = conn.execute(rows_.SIGNED_HEAD).fetchone()
        return (row[2] or "") if row else ""

    def keep_head(self, node_id: str, seq: int, digest: str, signed: str, received_at: datetime) -> None:
        with self._write() as conn:
            conn.execute(rows_.KEEP_HEAD, (node_id, seq, digest, signed, rows_.iso(received_at)))

    def heads_of(self, node_id: str, limit: int) -> list[str]:
        with self._read() as conn:
            return [signed for (signed,) in conn.execute(rows_.HEADS_OF, (node_id, limit))]

    # --- organisations ----------------------------------------------------------------------

    def create_organisation(self, org: Organisation, log: Events) -> Organisation:
        profile = rows_.to_json({**asdict(org.profile), "commitments": list(org.profile.commitments)})
        with self._write() as conn:
            key = conn.execute(
                "INSERT INTO organisations (organisation_id, profile_json, registered_at, verified, "
                "verification_note) VALUES (?, ?, ?, ?, ?)",
                (
                    org.organisation_id,
                    profile,
                    rows_.iso(org.registered_at),
                    int(org.verified),
                    org.verification_note,
                ),
            ).lastrowid
            assert key is not None  # an INSERT always gives its row id
            if org.assessment is not None:
                rows_.save_assessment(conn, key, org.assessment)
            self._append(conn, log)
        return self.get_organisation(org.organisation_id)

    def get_organisation(self, organisation_id: str) -> Organisation:
        with self._read() as conn:
            return rows_.organisation(conn, rows_.org_key(conn, organisation_id))

    def list_organisations(self, *, after: str = "", limit: int | None = None) -> list[Organisation]:
        with self._read() as conn:
            conn.execute("BEGIN")
            keys = [k for (k,) in conn.execute(rows_.ORGANISATIONS, (after, q.no_limit(limit)))]
            return [rows_.organisation(conn, k) for k in keys]

    def set_verification(
        self, organisation_id: str, verified: bool, note: str, assessment: Assessment, log: Events
    ) -> Organisation:
        with self._write() as conn:
            key = rows_.org_key(conn, organisation_id)
            conn.execute(
                "UPDATE organisations SET verified = ?, verification_note = ? WHERE org_key = ?",
                (int(verified), note, key),
            )
            rows_.save_assessment(conn, key, assessment)
            self._append(conn, log)
        return self.get_organisation(organisation_id)

    def decide_admission(self, member_id: str, admit: bool, by: str, reason: str, log: Events) -> Member:
        store = self._store
        with self._write() as conn:
            stamp = store._stamp(None)
            if admit:
                store._admit(conn, member_id, by, stamp)
            else:
                store._refuse(conn, member_id, reason, stamp)
            self._append(conn, log)
        return store.get_member(member_id)

    def track_record(self, organisation_id: str, now: int) -> tuple[int, int]:
        with self._read() as conn:
            completed, revoked = conn.execute(
                rows_.TRACK_RECORD, (now, rows_.org_key(conn, organisation_id))
            ).fetchone()
        return completed, revoked

    # --- requests, reviews and grants -------------------------------------------------------

    def create_request(
        self, record: DataRequestRecord, grant: GrantRecord | None, assessment: Assessment | None, log: Events
    ) -> None:
        d = record.decision
        with self._write() as conn:
            org_key = rows_.org_key(conn, record.organisation_id)
            if assessment is not None:
                rows_.save_assessment(conn, org_key, assessment)
            values = (
                record.request_id, org_key, record.spec.to_json(), record.state.value,
                rows_.iso(record.submitted_at), d.decision_id, d.revision, rows_.to_json(d.result),
            )  # fmt: skip
            request_key = conn.execute(rows_.INSERT_REQUEST, values).lastrowid
            assert request_key is not None  # an INSERT always gives its row id
            if grant is not None:
                rows_.insert_grant(conn, request_key, org_key, grant)
            self._append(conn, log)

    def get_request(self, request_id: str) -> DataRequestRecord:
        with self._read() as conn:
            conn.execute("BEGIN")
            row = conn.execute(rows_.REQUEST_BY_ID, (request_id,)).fetchone()
            if row is None:
                raise NotFound(f"no request {request_id!r}")
            return rows_.request(conn, row)

    def list_requests(
        self,
        *,
        organisation_id: str = "",
        state: RequestState | None = None,
        oldest_first: bool = False,
        after: str = "",
        limit: int | None = None,
    ) -> list[DataRequestRecord]:
        sql = rows_.REQUESTS_OLDEST if oldest_first else rows_.REQUESTS_NEWEST
        values = (organisation_id, state.value if state else "", after, q.no_limit(limit))
        with self._read() as conn:
            conn.execute("BEGIN")
            found = conn.execute(sql, values).fetchall()
            return [rows_.request(conn, row) for row in found]

    def record_review(self, request_id: str, review: Review, grant: GrantRecord | None, log: Events) -> None:
        state = RequestState.APPROVED if review.outcome is Outcome.APPROVE else RequestState.REJECTED
        with self._write() as conn:
            row = conn.execute(rows_.AWAITING, (request_id,)).fetchone()
            if row is None:
                raise Conflict(f"request {request_id!r} does not await review")
            request_key, org_key = row
            conn.execute(
                "UPDATE data_requests SET state = ? WHERE request_key = ?", (state.value, request_key)
            )
            values = (
                request_key, review.decision_id, review.reviewer, review.outcome.value, review.reason,
                review.proposed.value, rows_.iso(review.decided_at),
            )  # fmt: skip
            conn.execute(rows_.INSERT_REVIEW, values)
            if grant is not None:
                rows_.insert_grant(conn, request_key, org_key, grant)
            self._append(conn, log)

    def list_decisions(self, filters: DecisionFilter) -> tuple[list[tuple[str, DataRequestRecord]], int, int]:
        since = rows_.iso(filters.since) if filters.since else None
        until = rows_.iso(filters.until) if filters.until else None
        common = (filters.organisation_id, since, until)
        outcome = filters.outcome.value if filters.outcome else ""
        at, by, request_id = filters.after or (None, "", "")
        after = (rows_.iso(at) if at else None, by, request_id)
        with self._read() as conn:
            conn.execute("BEGIN")
            found = conn.execute(
                rows_.DECISIONS, (*common, filters.decided_by, outcome, *after, filters.limit)
            ).fetchall()
            reviewed, agreed = conn.execute(rows_.AGREEMENT, common).fetchone()
            decisions = [
                (by, rows_.request(conn, conn.execute(rows_.REQUEST_BY_ID, (request_id,)).fetchone()))
                for by, request_id in found
            ]
        return decisions, reviewed, agreed

    def get_grant(self, grant_id: str) -> GrantRecord:
        with self._read() as conn:
            row = conn.execute(rows_.GRANT_BY_ID, (grant_id,)).fetchone()
        if row is None:
            raise NotFound(f"no grant {grant_id!r}")
        return rows_.grant(row)

    def list_grants(
        self, organisation_id: str, *, after: tuple[int, str] | None = None, limit: int | None = None
    ) -> list[GrantRecord]:
        issued, grant_id = after or (None, "")
        with self._read() as conn:
            found = conn.execute(
                rows_.GRANTS_OF, (organisation_id, issued, grant_id, q.no_limit(limit))
            ).fetchall()
        return [rows_.grant(row) for row in found]

    def revoke_grant(
        self, grant_id: str, reason: str, revoked_by: str, at: datetime, log: Events
    ) -> GrantRecord:
        with self._write() as conn:
            if conn.execute(rows_.REVOKE, (rows_.iso(at), reason, revoked_by, grant_id)).rowcount:
                self._append(conn, log)
            elif conn.execute("SELECT 1 FROM grants WHERE grant_id = ?", (grant_id,)).fetchone() is None:
                raise NotFound(f"no grant {grant_id!r}")
        return self.get_grant(grant_id)

    def revocation(self, grant_id: str) -> str | None:
        with self._read() as conn:
            row = conn.execute(rows_.REVOCATION, (grant_id,)).fetchone()
        return row[0] if row else None

    def revoke_tokens(self, revocation: TokenRevocation, log: Events) -> None:
        r = revocation
        with self._write() as conn:
            conn.execute(
                "INSERT INTO token_revocations (jti, subject, issued_before_unix, reason, revoked_by,"
                " revoked_at) VALUES (?, ?, ?, ?, ?, ?)",
                (r.jti or None, r.subject or None, r.issued_before or None, r.reason, r.revoked_by,
                 rows_.iso(r.revoked_at)),
            )  # fmt: skip
            self._append(conn, log)

    def token_revocations(self) -> list[TokenRevocation]:
        with self._read() as conn:
            found = conn.execute(
                "SELECT jti, subject, issued_before_unix, reason, revoked_by, revoked_at"
                " FROM token_revocations ORDER BY revocation_key"
            ).fetchall()
        return [
            TokenRevocation(reason, by, datetime.fromisoformat(at), jti or "", subject or "", before or 0)
            for jti, subject, before, reason, by, at in found
        ]

    # --- release ----------------------------------------------------------------------------

    def members_of_profiles(self, profile_ids: Sequence[str]) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        with self._read() as conn:
            found = conn.execute(rows_.MEMBERS_OF, (json.dumps(list(profile_ids)),)).fetchall()
        for profile_id, member_id in found:
            grouped.setdefault(profile_id, []).append(member_id)
        return grouped

    def member_profiles(self, member_ids: Sequence[str]) -> dict[str, str]:
        with self._read() as conn:
            return dict(conn.execute(rows_.PROFILES_OF, (json.dumps(list(member_ids)),)).fetchall())

    def contributors(
        self, profile_ids: Sequence[str], dataset: str, runs: Sequence[tuple[int, int]]
    ) -> list[tuple[str, str]]:
        found: dict[str, str] = {}
        profiles = json.dumps(list(profile_ids))
        with self._read() as conn:
            conn.execute("BEGIN")
            row = conn.execute("SELECT dataset_id FROM datasets WHERE name = ?", (dataset,)).fetchone()
            for start, end in runs if row else ():
                values = (profiles, row[0], start, end, EXTENT_BUCKET)
                found.update(conn.execute(rows_.CONTRIBUTORS, values).fetchall())
        return sorted(found.items())

    def count_contributors(self, released: ReleasedRuns) -> int:
        runs = [(ds, s, e) for ds, (_, spans) in released.items() for s, e in spans]
        consent = [{"d": ds, "p": p} for ds, (profiles, _) in released.items() for p in profiles]
        if not runs or not consent:
            return 0
        spans = json.dumps([{"d": ds, "s": s, "e": e} for ds, s, e in runs])
        first, last = min(s for _, s, _ in runs), max(e for _, _, e in runs)
        with self._read() as conn:
            values = (spans, json.dumps(consent), EXTENT_BUCKET, first, last)
            return int(conn.execute(rows_.COUNT_CONTRIBUTORS, values).fetchone()[0])

    def record_access(
        self, rows: Sequence[tuple[str, AccessEntry]], kind: GrantKind = GrantKind.GOVERNANCE
    ) -> dict[str, str]:
        if not rows:
            return {}
        kind = GrantKind(kind)
        with self._write() as conn:
            pseudonyms = rows_.pseudonyms(conn, sorted({member for member, _ in rows}))
            conn.executemany(rows_.INSERT_ACCESS, rows_.access_values(pseudonyms, kind, rows))
        return pseudonyms

    def record_release_access(
        self,
        entries: Sequence[tuple[str, AccessEntry, Sequence[tuple[int, int]]]],
        kind: GrantKind = GrantKind.GOVERNANCE,
    ) -> None:
        kind = GrantKind(kind)
        with self._write() as conn:
            for profile_id, e, spans in entries:
                values = (profile_id, *rows_.access_columns(kind, e))
                key = conn.execute(rows_.INSERT_RELEASE_ACCESS, values).lastrowid
                conn.executemany(rows_.INSERT_SPAN, [(key, start, end) for start, end in spans])

    def access_for_member(self, member_id: str, limit: int = 100, *, after: int = 0) -> list[AccessEntry]:
        with self._read() as conn:
            found = conn.execute(rows_.ACCESS, (member_id, limit, after)).fetchall()
        return [rows_.access(row) for row in found]


# The same store on either backend: it runs on the member store's connections.
SqliteGovernanceStore = PostgresGovernanceStore = SqlGovernanceStore
