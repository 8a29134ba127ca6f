"""The ballot store on either backend, in the node's database beside the governance store."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from coopfed.node.storage.ballots import BallotRecord, BallotStore, Counter
from coopfed.node.storage.base import AlreadyExists, NotFound, StorageError
from coopfed.node.storage.connection import Connection
from coopfed.node.storage.governance import Conflict, Events
from coopfed.node.storage.governance_sqlite import SqlGovernanceStore
from coopfed.node.storage.sql import SqlStore

log = logging.getLogger(__name__)
_SELECT = """SELECT b.ballot_id, b.proposal_json, b.proposed_by, b.created_unix, b.opens_unix, b.closes_unix,
    b.closed_unix, b.tally_json, b.tally_digest,
    (SELECT count(*) FROM ballot_signatures s WHERE s.ballot_id = b.ballot_id),
    (SELECT count(*) FROM ballot_voters v WHERE v.ballot_id = b.ballot_id)
FROM ballots b"""
_ONE = _SELECT + " WHERE b.ballot_id = ?"
_ALL = _SELECT + " ORDER BY b.created_unix DESC, b.ballot_id"
_SIGN = "INSERT INTO ballot_signatures (ballot_id, member_id) VALUES (?, ?)"
_SIGNED = "SELECT 1 FROM ballot_signatures WHERE ballot_id = ? AND member_id = ?"
_VOTER = "INSERT INTO ballot_voters (ballot_id, member_id) VALUES (?, ?)"
_VOTED = "SELECT 1 FROM ballot_voters WHERE ballot_id = ? AND member_id = ?"
_BOX = "SELECT receipt_hash, choice FROM ballot_box WHERE ballot_id = ? ORDER BY receipt_hash"


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _record(row: tuple[Any, ...]) -> BallotRecord:
    tally = json.loads(row[7]) if row[7] is not None else None
    return BallotRecord(
        row[0], json.loads(row[1]), row[2], row[3], row[4], row[5], row[6], tally, row[8] or "",
        row[9], row[10],
    )  # fmt: skip


class SqlBallotStore(BallotStore):
    """Ballot tables in the node's database, on the member store's connections; writes share
    the decision log's transaction."""

    def __init__(self, store: SqlStore, governance: SqlGovernanceStore | None = None) -> None:
        self._store = store
        self._governance = governance or SqlGovernanceStore(store)

    def _one(self, conn: Connection, ballot_id: str) -> BallotRecord:
        row = conn.execute(_ONE, (ballot_id,)).fetchone()
        if row is None:
            raise NotFound(f"no ballot {ballot_id!r}")
        return _record(row)

    def create_ballot(self, ballot: BallotRecord, signer: str, log: Events) -> BallotRecord:
        with self._governance._write() as conn:
            if conn.execute("SELECT 1 FROM ballots WHERE ballot_id = ?", (ballot.ballot_id,)).fetchone():
                raise AlreadyExists(f"ballot {ballot.ballot_id!r} exists already")
            conn.execute(
                "INSERT INTO ballots (ballot_id, proposal_json, proposed_by, created_unix, opens_unix,"
                " closes_unix) VALUES (?, ?, ?, ?, ?, ?)",
                (ballot.ballot_id, _json(ballot.proposal), ballot.proposed_by, ballot.created_unix,
                 ballot.opens_unix, ballot.closes_unix),
            )  # fmt: skip
            if signer:
                conn.execute(_SIGN, (ballot.ballot_id, signer))
            self._governance._append(conn, log)
            return self._one(conn, ballot.ballot_id)

    def get_ballot(self, ballot_id: str) -> BallotRecord:
        with self._read() as conn:
            return self._one(conn, ballot_id)

    def list_ballots(self) -> list[BallotRecord]:
        with self._read() as conn:
            return [_record(r) for r in conn.execute(_ALL)]

    def sign_petition(
        self, ballot_id: str, member_id: str, needed: int, opens: int, closes: int, log: Events
    ) -> BallotRecord:
        with self._governance._write() as conn:
            ballot = self._one(conn, ballot_id)
            if ballot.opens_unix is not None:
                raise Conflict(f"ballot {ballot_id} is no longer a petition: it opened already")
            if conn.execute(_SIGNED, (ballot_id, member_id)).fetchone():
                raise Conflict(f"member {member_id} signed the petition for {ballot_id} already")
            conn.execute(_SIGN, (ballot_id, member_id))
            if ballot.signatures + 1 >= needed:
                conn.execute(
                    "UPDATE ballots SET opens_unix = ?, closes_unix = ? WHERE ballot_id = ?",
                    (opens, closes, ballot_id),
                )
                self._governance._append(conn, log)
            return self._one(conn, ballot_id)

    def cast_vote(self, ballot_id: str, member_id: str, receipt_hash: str, choice: str) -> None:
        with self._governance._write() as conn:
            row = conn.execute(
                "SELECT opens_unix IS NOT NULL AND closed_unix IS NULL FROM ballots WHERE ballot_id = ?",
                (ballot_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"no ballot {ballot_id!r}")
            if not row[0]:
                raise Conflict(f"ballot {ballot_id} is not open")
            if conn.execute(_VOTED, (ballot_id, member_id)).fetchone():
                raise Conflict(f"member {member_id} voted in {ballot_id} already")
            conn.execute(
                "INSERT INTO ballot_voters (ballot_id, member_id) VALUES (?, ?)", (ballot_id, member_id)
            )
            conn.execute(
                "INSERT INTO ballot_box (ballot_id, receipt_hash, choice) VALUES (?, ?, ?)",
                (ballot_id, receipt_hash, choice),
            )

    def has_voted(self, ballot_id: str, member_id: str) -> bool:
        with self._read() as conn:
            return conn.execute(_VOTED, (ballot_id, member_id)).fetchone() is not None

    def close_ballot(self, ballot_id: str, closed_unix: int, count: Counter) -> BallotRecord:
        with self._governance._write() as conn:
            ballot = self._one(conn, ballot_id)
            if ballot.closed_unix is not None:
                raise Conflict(f"ballot {ballot_id} was closed already")
            box = conn.execute(_BOX, (ballot_id,)).fetchall()
            (eligible,) = conn.execute("SELECT count(*) FROM admitted_members").fetchone()
            closing = count(ballot, [(h, c) for h, c in box], eligible)
            conn.execute(
                "UPDATE ballots SET closed_unix = ?, tally_json = ?, tally_digest = ? WHERE ballot_id = ?",
                (closed_unix, _json(closing.tally), closing.digest, ballot_id),
            )
            self._governance._append(conn, closing.log)
            closed = self._one(conn, ballot_id)
        # Each vote wrote its voter's row and its box row in one transaction, which the WAL
        # (SQLite) or the rows' place and transaction id (PostgreSQL) still show: once counted, not.
        try:
            self._store.forget_write_order("ballot_voters", "ballot_box")
        except StorageError as exc:  # the count stands; the next close rewrites them again
            log.warning("the ballot tables were not rewritten after closing %s: %s", ballot_id, exc)
        return closed

    def box(self, ballot_id: str) -> list[tuple[str, str]]:
        with self._read() as conn:
            if self._one(conn, ballot_id).closed_unix is None:
                raise Conflict(f"ballot {ballot_id} is not closed: its box stays shut until then")
            return [(h, c) for h, c in conn.execute(_BOX, (ballot_id,))]

    def record_application(self, ballot_ids: Sequence[str], revision: str, at: int) -> None:
        with self._store._write() as conn:
            conn.executemany(
                "INSERT INTO ballot_applications (ballot_id, revision, applied_unix) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                [(b, revision, at) for b in ballot_ids],
            )

    def applications(self) -> list[tuple[str, str, int]]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT ballot_id, revision, applied_unix FROM ballot_applications ORDER BY applied_unix"
            )
            return [(b, r, t) for b, r, t in rows]

    def _read(self) -> Any:
        return self._store._read()
