"""The federation store on either backend, in the node's database beside the member store."""

from __future__ import annotations

import json
from typing import Any

from coopfed.federation.revocation import RevocationEntry, RevocationList
from coopfed.node.storage.connection import Connection
from coopfed.node.storage.federation import FederationSnapshot, FederationStore, Record
from coopfed.node.storage.sql import SqlStore

_TABLES = (
    "federation_peers",
    "federation_revocations",
    "federation_grant_decisions",
    "federation_held_grants",
    "federation_peer_revocations",
)
_BUMP_PEERS = "UPDATE federation_peers_version SET version = version + 1"
_PIN = """INSERT INTO federation_peers (peer_id, record) VALUES (?, ?)
ON CONFLICT (peer_id) DO UPDATE SET record = excluded.record"""
_HOLD = """INSERT INTO federation_held_grants (jti, issuer, revoked_reason, record) VALUES (?, ?, ?, ?)
ON CONFLICT (jti) DO UPDATE SET issuer = excluded.issuer, revoked_reason = excluded.revoked_reason,
    record = excluded.record"""
_DECIDE = "INSERT INTO federation_grant_decisions (jti, record) VALUES (?, ?)"
_PEER_LIST = """INSERT INTO federation_peer_revocations (peer_id, list, fetched_at) VALUES (?, ?, ?)
ON CONFLICT (peer_id) DO UPDATE SET list = excluded.list, fetched_at = excluded.fetched_at"""
_LIVE_HELD = "SELECT jti FROM federation_held_grants WHERE issuer = ? AND revoked_reason IS NULL"


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class SqlFederationStore(FederationStore):
    """Federation tables in the node's database, on the member store's connections."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    # --- peers ---------------------------------------------------------------------------

    def peers(self) -> dict[str, Record]:
        with self._store._read() as conn:
            rows = conn.execute("SELECT peer_id, record FROM federation_peers ORDER BY peer_id").fetchall()
        return {peer_id: json.loads(record) for peer_id, record in rows}

    def peers_version(self) -> int:
        with self._store._read() as conn:
            return int(conn.execute("SELECT version FROM federation_peers_version").fetchone()[0])

    def pin(self, peer_id: str, record: Record) -> None:
        with self._store._write() as conn:
            conn.execute(_PIN, (peer_id, _json(record)))
            conn.execute(_BUMP_PEERS)

    def unpin(self, peer_id: str) -> bool:
        with self._store._write() as conn:
            gone = conn.execute("DELETE FROM federation_peers WHERE peer_id = ?", (peer_id,)).rowcount
            conn.execute(_BUMP_PEERS)
        return bool(gone)

    # --- this node's revocations -----------------------------------------------------------

    def revocations(self, issuer: str) -> RevocationList:
        with self._store._read() as conn:
            return _own_list(conn, issuer)

    def revocation_sequence(self) -> int:
        with self._store._read() as conn:
            return int(conn.execute("SELECT sequence FROM federation_revocation_sequence").fetchone()[0])

    def revoke(self, issuer: str, jti: str, *, reason: str, expires_at: int) -> RevocationEntry:
        with self._store._write() as conn:
            found = _own_list(conn, issuer)
            entry = found.revoke(jti, reason=reason, expires_at=expires_at)
            found.prune()
            _save_own_list(conn, found)
        return entry

    # --- decisions ------------------------------------------------------------------------

    def record_decision(self, record: Record) -> None:
        with self._store._write() as conn:
            conn.execute(_DECIDE, (_issued_jti(record), _json(record)))

    def decisions(self) -> list[Record]:
        with self._store._read() as conn:
            rows = conn.execute("SELECT record FROM federation_grant_decisions ORDER BY decision_key")
            return [json.loads(record) for (record,) in rows]

    def decision_for(self, jti: str) -> Record | None:
        with self._store._read() as conn:
            row = conn.execute(
                "SELECT record FROM federation_grant_decisions WHERE jti = ? ORDER BY decision_key DESC",
                (jti,),
            ).fetchone()
        return json.loads(row[0]) if row else None

    # --- held grants ------------------------------------------------------------------------

    def held(self) -> dict[str, Record]:
        with self._store._read() as conn:
            rows = conn.execute("SELECT revoked_reason, record FROM federation_held_grants ORDER BY jti")
            held = [{**json.loads(record), "revoked_reason": reason} for reason, record in rows]
        return {record["jti"]: record for record in held}

    def hold(self, record: Record) -> None:
        with self._store._write() as conn:
            _hold(conn, record)

    # --- peers' revocation lists --------------------------------------------------------------

    def peer_revocations(self, peer_id: str) -> tuple[RevocationList, int] | None:
        with self._store._read() as conn:
            row = conn.execute(
                "SELECT list, fetched_at FROM federation_peer_revocations WHERE peer_id = ?", (peer_id,)
            ).fetchone()
        return (RevocationList.from_json(row[0]), int(row[1])) if row else None

    def store_peer_revocations(self, peer_id: str, revocations: RevocationList, fetched_at: int) -> list[str]:
        with self._store._write() as conn:
            conn.execute(_PEER_LIST, (peer_id, revocations.to_json(), fetched_at))
            live = [jti for (jti,) in conn.execute(_LIVE_HELD, (peer_id,))]
            marked = sorted(jti for jti in live if jti in revocations)
            conn.executemany(
                "UPDATE federation_held_grants SET revoked_reason = ? WHERE jti = ?",
                [(revocations.reason_for(jti) or "", jti) for jti in marked],
            )
        return marked

    # --- import ------------------------------------------------------------------------------

    def import_snapshot(self, snapshot: FederationSnapshot) -> bool:
        with self._store._write() as conn:
            if any(conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() for table in _TABLES):  # noqa: S608
                return False
            conn.executemany(_PIN, [(p, _json(r)) for p, r in snapshot.peers.items()])
            conn.execute(_BUMP_PEERS)
            if snapshot.revocations is not None:
                _save_own_list(conn, snapshot.revocations)
            conn.executemany(_DECIDE, [(_issued_jti(d), _json(d)) for d in snapshot.decisions])
            for record in snapshot.held.values():
                _hold(conn, record)
            conn.executemany(
                _PEER_LIST, [(p, rl.to_json(), at) for p, (rl, at) in snapshot.peer_revocations.items()]
            )
        return True


def _own_list(conn: Connection, issuer: str) -> RevocationList:
    (sequence,) = conn.execute("SELECT sequence FROM federation_revocation_sequence").fetchone()
    rows = conn.execute("SELECT jti, reason, revoked_at, expires_at FROM federation_revocations")
    return RevocationList(issuer, (RevocationEntry(*row) for row in rows), sequence)


def _save_own_list(conn: Connection, revocations: RevocationList) -> None:
    conn.execute("DELETE FROM federation_revocations")
    conn.executemany(
        "INSERT INTO federation_revocations (jti, reason, revoked_at, expires_at) VALUES (?, ?, ?, ?)",
        [(e.jti, e.reason, e.revoked_at, e.expires_at) for e in revocations.entries],
    )
    conn.execute("UPDATE federation_revocation_sequence SET sequence = ?", (revocations.sequence,))


def _hold(conn: Connection, record: Record) -> None:
    body = {k: v for k, v in record.items() if k != "revoked_reason"}
    conn.execute(_HOLD, (record["jti"], record["issuer"], record.get("revoked_reason"), _json(body)))


def _issued_jti(record: Record) -> str | None:
    grant = record.get("grant")
    return grant.get("jti") if isinstance(grant, dict) else None
