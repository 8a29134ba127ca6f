"""Migration 3 on a database written under schema 2: access entries kept, federation grants admitted."""

from __future__ import annotations

from pathlib import Path

import pytest

from coopfed.node.model import ConsentLevel, ConsentSettings
from coopfed.node.storage import InvalidData, SqliteStore
from coopfed.node.storage.governance_sqlite import SqliteGovernanceStore
from coopfed.node.storage.records import RequestState
from coopfed.node.storage.schema import bundled_migrations

from .test_gov_store import JAN, NOW, _org, _request

V2_ACCESS = """INSERT INTO access_log (pseudonym, at, release_id, grant_id, dataset, granularity,
    period_start, period_end, purpose, flow, decision_id, consent_decision_id)
VALUES ('p-a', ?, ?, ?, 'demand', 'aggregate', ?, ?, 'dpv:X', 'third_party', 'd-r1', 'c-1')"""

V3_ACCESS = """INSERT INTO access_log (pseudonym, grant_kind, grant_id, recipient_id, recipient_name, at,
    release_id, dataset, granularity, period_start, period_end, purpose, flow, decision_id,
    consent_decision_id)
VALUES ('p-a', ?, ?, ?, ?, ?, 'rel-2', 'demand', 'aggregate', 0, 1800, 'dpv:X', 'coop_to_coop', '', '')"""


def _v2_database(path: Path) -> None:
    """A node database at schema 2 with one member, one grant and one access entry, as code of
    that schema wrote them; schema 2's foreign key refuses any grant not in `grants`."""
    store = SqliteStore(path, synchronous="NORMAL", migrations=bundled_migrations()[:2])
    gov = SqliteGovernanceStore(store)
    _org(gov)
    _request(gov, "r1", RequestState.APPROVED, grant=True)
    green = ConsentSettings(level=ConsentLevel.GREEN)
    with store._write() as conn:  # the member row as schema 2's code wrote it
        conn.execute("INSERT INTO profiles (profile_id, settings_json) VALUES (?, '{}')", (green.profile_id,))
        conn.execute(
            "INSERT INTO members (member_id, display_name, created_at, settings_json, profile_key) "
            "VALUES ('a', 'a', ?, ?, 1)",
            (NOW.isoformat(), green.to_json()),
        )
        conn.execute(
            "INSERT INTO member_pseudonyms (member_key, pseudonym) "
            "SELECT member_key, 'p-a' FROM members WHERE member_id = 'a'"
        )
        conn.execute(V2_ACCESS, (NOW.isoformat(), "rel-1", "g-r1", JAN, JAN + 3600))
    with pytest.raises(InvalidData, match="FOREIGN KEY"), store._write() as conn:
        conn.execute(V2_ACCESS, (NOW.isoformat(), "rel-2", "jti-of-a-peer", JAN, JAN + 3600))
    store.close()


def test_migration_keeps_entries_and_lets_either_kind_of_grant_in(tmp_path: Path) -> None:
    _v2_database(tmp_path / "node.db")
    store = SqliteStore(tmp_path / "node.db", synchronous="NORMAL")
    try:
        assert store.schema_version == len(bundled_migrations()) >= 3
        gov = SqliteGovernanceStore(store)
        [kept] = gov.access_for_member("a")
        assert (kept.release_id, kept.grant_id, kept.request_id) == ("rel-1", "g-r1", "r1")
        assert (kept.organisation_id, kept.organisation_name) == ("org-1", "Uni")
        assert (kept.decision_id, kept.consent_decision_id, kept.period_start) == ("d-r1", "c-1", JAN)
        with store._read() as conn:
            assert conn.execute("SELECT access_key, grant_kind FROM access_log").fetchall() == [
                (1, "governance")
            ]
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        assert {"access_log", "access_log_by_pseudonym"} <= tables
        assert "access_log_v3" not in tables
        at = NOW.isoformat()
        with store._write() as conn:  # a peer's grant now goes in; a governance grant is still checked
            conn.execute(V3_ACCESS, ("federation", "jti-1", "coop-a", "A co-op", at))
        with pytest.raises(InvalidData, match="FOREIGN KEY"), store._write() as conn:
            conn.execute(V3_ACCESS, ("governance", "g-unknown", "", "", at))
        assert [e.grant_id for e in gov.access_for_member("a")] == ["jti-1", "g-r1"]
    finally:
        store.close()
