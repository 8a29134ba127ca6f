"""`coopfed node migrate --to postgresql://...`: a co-op moved from its SQLite file into a real
PostgreSQL server, verified, then served from there; refusals; tampering caught; pg_dump backups."""

from __future__ import annotations

import re
import sqlite3
import time
import tomllib
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import psycopg
import pytest

from coopfed.node.client import bearer
from coopfed.node.federation.state import FederationState, PeerRecord
from coopfed.node.operations import set_storage_url
from coopfed.node.services import books_of
from coopfed.node.settings import load_settings
from coopfed.node.storage import SqliteStore, Store, move
from coopfed.node.storage.ballots import BallotRecord, Closing
from coopfed.node.storage.ballots_sqlite import SqlBallotStore
from coopfed.node.storage.federation_sqlite import SqlFederationStore
from coopfed.node.storage.forecast_sqlite import SqlForecastIndex
from coopfed.node.storage.postgres import PostgresStore
from coopfed.node.storage.schema import Migration, bundled_migrations
from coopfed.v1 import common_pb2, member_pb2, member_pb2_grpc

from .. import pgserver
from ..federation_node.conftest import sample_manifest
from ..governance.conftest import (
    DAY,
    GREEN,
    JAN,
    Running,
    add_member,
    approved_grant,
    fetch,
    register,
    start,
    verify_org,
)
from .conftest import serving
from .test_operations import coopfed, refused


def _node_state(store: Store) -> None:
    """Federation state, the forecast index and two ballots (one counted, one open) in the store."""
    fed = SqlFederationStore(store)
    now = int(time.time())
    FederationState(fed, "coop-a").pin(PeerRecord(sample_manifest("coop-b"), now, now, True, ("aligned",)))
    fed.revoke("coop-a", "g1", reason="leaked", expires_at=4_000_000_000)
    fed.record_decision({"at": 1, "grant": {"jti": "g0"}})
    forecasts = SqlForecastIndex(store)
    forecasts.set_mode("federated")
    forecasts.save_latest({"windows": [1, 2]})
    ballots = SqlBallotStore(store)
    for ballot_id in ("counted", "open"):
        ballots.create_ballot(BallotRecord(ballot_id, {"title": ballot_id}, "board:x", 1, 1, 2**40), "", [])
        for i, member in enumerate(("m-1", "m-2", "m-3")):
            ballots.cast_vote(ballot_id, member, f"{i:064x}", ("yes", "no")[i % 2])
    ballots.close_ballot("counted", 3, lambda _, box, _n: Closing({"votes": len(box)}, "d" * 64, []))


def _state(store: Store) -> dict[str, Any]:
    fed, ballots, forecasts = SqlFederationStore(store), SqlBallotStore(store), SqlForecastIndex(store)
    return {
        "peers": fed.peers(), "peers_version": fed.peers_version(), "sequence": fed.revocation_sequence(),
        "revoked": [e.jti for e in fed.revocations("coop-a").entries], "decisions": fed.decisions(),
        "forecast": (forecasts.mode(), forecasts.latest()),
        "ballots": [(b.ballot_id, b.voted, b.tally) for b in ballots.list_ballots()],
        "box": ballots.box("counted"),
    }  # fmt: skip


def _facts(gov: Running, member: member_pb2.RegisterResponse, grant: str) -> dict[str, Any]:
    """What members and the grant's holder read over gRPC."""
    stub = member_pb2_grpc.MemberServiceStub(gov.channel)
    md = bearer(member.token)
    exported = [c.readings for c in stub.ExportMyData(member_pb2.ExportRequest(), metadata=md)]
    history = stub.ListConsentHistory(member_pb2.ListConsentHistoryRequest(), metadata=md)
    chunks = fetch(gov, grant)
    return {
        "export": sorted(p for b in exported for p in zip(b.period_start_unix, b.kwh, strict=True)),
        "history": [(h.record_id, h.at.seconds, str(h.settings), list(h.changes)) for h in history.records],
        "aggregates": [str(c.aggregate) for c in chunks if c.HasField("aggregate")],
        "released": [(c.summary.members_released, c.summary.cells_released) for c in chunks[-1:]],
        "profiles": sorted((p.profile_id, p.member_count) for p in gov.node.store.profiles()),
    }


@pytest.fixture
def coop(tmp_path: Path) -> tuple[Path, dict[str, Any], tuple[Any, str]]:
    """A co-op on SQLite with members, consent, readings, a grant, ledger entries and a decision log;
    stopped, with what its members and the grant's holder read while it served."""
    gen = start(tmp_path)
    gov = next(gen)
    for _ in range(6):
        add_member(gov.node, GREEN, days=40)
    joined = gov.members.Register(member_pb2.RegisterRequest(display_name="Ada"))
    gov.members.SetConsent(
        member_pb2.SetConsentRequest(
            settings=member_pb2.ConsentSettings(level=common_pb2.CONSENT_LEVEL_GREEN)
        ),
        metadata=bearer(joined.token),
    )
    periods = JAN + 1800 * np.arange(48 * 3, dtype=np.int64)
    gov.node.store.put_readings(joined.member_id, [("demand", periods, np.linspace(0.1, 2.0, periods.size))])
    org, md = register(gov)
    verify_org(gov, org)
    grant = approved_grant(gov, md).token
    books_of(gov.node).settle(JAN, JAN + DAY, now=JAN + DAY)
    before = _facts(gov, joined, grant)
    config = gov.node.settings.base_dir / "coopfed.toml"
    gen.close()
    with SqliteStore(config.parent / "node.db", create=False) as store:
        _node_state(store)
        before["state"] = _state(store)
    return config, before, (joined, grant)


def _served(config: Path, joined: Any, grant: str) -> dict[str, Any]:
    with serving(config) as (node, address), grpc.insecure_channel(address) as channel:
        return _facts(Running(node, address, channel), joined, grant)


def test_a_moved_coop_serves_the_same_data_from_postgresql(coop) -> None:
    config, before, (joined, grant) = coop
    url = pgserver.empty_database()
    database = config.parent / "node.db"
    kept = database.read_bytes()
    done = coopfed("node", "migrate", "--to", url, "--config", config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verifies on the copy" in done.stdout
    assert tomllib.loads(config.read_text())["storage"]["url"] == url
    assert config.stat().st_mode & 0o777 == 0o600
    assert database.read_bytes() == kept  # the SQLite file is left as it was
    with PostgresStore(url) as store:
        assert _state(store) == before.pop("state")
    after = _served(config, joined, grant)
    assert after == before
    assert len(after["export"]) == 48 * 3
    assert after["aggregates"]
    with psycopg.connect(url) as conn:  # the ledger and the governance tables came too, in full
        for table in ("ledger_lines", "ledger_transactions", "grants", "organisations", "decision_log",
                      "federation_peers", "forecast_latest", "ballot_box", "ballot_voters"):  # fmt: skip
            assert move._pg_has_rows(conn, table), table
    # the node writes on: identities continue past the copied keys
    with serving(config) as (node, _):
        node.store.create_member("m-after-move", "late", GREEN, admitted_by="test")
        assert node.store.get_member("m-after-move").display_name == "late"

    # a pg_dump backup restores into a new database that the node then serves
    dump = config.parent / "coop.dump"
    done = coopfed("node", "backup", dump, "--config", config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert dump.stat().st_mode & 0o777 == 0o600
    assert "already holds tables" in refused(coopfed("node", "restore", dump, "--config", config))
    set_storage_url(config, pgserver.empty_database())
    done = coopfed("node", "restore", dump, "--config", config)
    assert done.returncode == 0, done.stdout + done.stderr
    restored = _served(config, joined, grant)
    assert (restored["export"], restored["aggregates"]) == (before["export"], before["aggregates"])


def test_a_move_is_refused_into_a_database_that_holds_data(coop, tmp_path: Path) -> None:
    config, _, _ = coop
    used = pgserver.fresh_database()
    with PostgresStore(used) as store:
        store.create_member("someone", "someone", GREEN, admitted_by="test")
    before = config.read_text()
    says = refused(coopfed("node", "migrate", "--to", used, "--config", config))
    assert "the target database is not empty (consent_records, members, profiles hold rows)" in says
    other = pgserver.empty_database()
    with psycopg.connect(other, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (n BIGINT)")
    assert "not coopfed's (invoices)" in refused(
        coopfed("node", "migrate", "--to", other, "--config", config)
    )
    assert config.read_text() == before


def test_a_move_is_refused_while_the_node_serves_and_into_another_schema(coop) -> None:
    config, _, _ = coop
    with serving(config):
        says = refused(coopfed("node", "migrate", "--to", pgserver.empty_database(), "--config", config))
        assert "stop that node before you move its database" in says
    newer = pgserver.empty_database()
    extra = Migration(len(bundled_migrations()) + 1, "9999_later.sql", "CREATE TABLE later (n BIGINT)")
    PostgresStore(newer, migrations=[*bundled_migrations("postgresql"), extra]).close()
    says = refused(coopfed("node", "migrate", "--to", newer, "--config", config))
    assert "newer than this code knows" in says
    done = coopfed("node", "migrate", "--to", "mysql://nowhere/db", "--config", config)
    assert (done.returncode, "postgresql:// URL" in done.stdout) == (2, True)
    assert tomllib.loads(config.read_text())["storage"]["url"] == ""


def _edit_reading(conn: psycopg.Connection) -> None:
    conn.execute(
        "UPDATE readings SET kwh = kwh + 0.001 WHERE (member_key, period_start) = "
        "(SELECT member_key, max(period_start) FROM readings GROUP BY member_key ORDER BY member_key LIMIT 1)"
    )


def _edit_member(conn: psycopg.Connection) -> None:
    conn.execute("UPDATE members SET display_name = 'Mallory' WHERE member_key = 1")


def _edit_log(conn: psycopg.Connection) -> None:
    conn.execute("ALTER TABLE decision_log DISABLE TRIGGER decision_log_append_only")
    conn.execute(
        "UPDATE decision_log SET entry_json = replace(entry_json, 'true', 'false') WHERE position = 2"
    )


TAMPERING = [
    (_edit_reading, "the readings of 1 member(s) differ, among them m-"),
    (_edit_member, "table members: "),
    (_edit_log, "the decision log's chain does not verify on the copy"),
]


def test_a_copy_changed_before_it_is_verified_is_caught(coop) -> None:
    config, _, _ = coop
    source = sqlite3.connect(f"{(config.parent / 'node.db').as_uri()}?mode=ro", uri=True)
    try:
        for tamper, says in TAMPERING:
            url = pgserver.empty_database()
            with move.open_target(url) as target:
                copied = move.copy_state(source, target)
                assert copied["readings"] == 6 * 48 * 40 + 48 * 3
                assert move.verify_copy(source, target).readings == copied["readings"]
                with psycopg.connect(url, autocommit=True) as conn:
                    tamper(conn)
                with pytest.raises(move.CopyMismatch, match=re.escape(says)):
                    move.verify_copy(source, target)
                move.empty_target(target)
                with psycopg.connect(url) as conn:
                    assert not any(
                        move._pg_has_rows(conn, t) for t in ("members", "readings", "decision_log")
                    )
    finally:
        source.close()
    assert load_settings(config).storage.url == ""
