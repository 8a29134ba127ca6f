"""What only the PostgreSQL backend has: its migration history, monthly partitions, the
configuration that selects it (the portal's accounts with it), and a server that goes away and comes back."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from coopfed.node.errors import AlreadyExists, FailedPrecondition
from coopfed.node.model import ConsentSettings
from coopfed.node.operations import backup, restore
from coopfed.node.portal.accounts import Accounts, hash_password
from coopfed.node.settings import load_settings
from coopfed.node.storage import SchemaError, SqliteStore, StorageUnavailable
from coopfed.node.storage.configured import open_store
from coopfed.node.storage.postgres import PostgresStore
from coopfed.node.storage.postgres_conn import translate
from coopfed.node.storage.schema import bundled_migrations

from ..node.conftest import running_node
from ..pgserver import PgServer, binaries, fresh_database

JAN_2024 = 1_704_067_200
HH = 1800


@pytest.fixture
def pg() -> Iterator[PostgresStore]:
    with PostgresStore(fresh_database()) as store:
        yield store


def _member(store: PostgresStore, member_id: str = "m") -> None:
    store.create_member(member_id, "A member", ConsentSettings(), admitted_by="test")


def test_both_dialects_have_one_history() -> None:
    sqlite, postgres = bundled_migrations("sqlite"), bundled_migrations("postgresql")
    assert [(m.version, m.name) for m in postgres] == [(m.version, m.name) for m in sqlite]
    assert all(a.checksum != b.checksum for a, b in zip(sqlite, postgres, strict=True))


def test_a_changed_applied_migration_is_refused(pg: PostgresStore) -> None:
    migrations = bundled_migrations("postgresql")
    edited = [*migrations[:-1], dataclasses.replace(migrations[-1], sql=migrations[-1].sql + "\n-- edited")]
    with pytest.raises(SchemaError, match="must not change"):
        PostgresStore(pg.url, migrations=edited)


def test_readings_are_partitioned_by_month(pg: PostgresStore) -> None:
    _member(pg)
    periods = JAN_2024 + HH * np.arange(48 * 70, dtype=np.int64)  # 70 days: January to March
    pg.put_readings("m", [("demand", periods, np.full(periods.size, 0.25))])
    pg.put_readings("m", [("demand", np.array([315_532_800]), np.array([1.0]))])  # 1980: no month of its own
    with psycopg.connect(pg.url) as conn:
        counts = dict(
            conn.execute("SELECT tableoid::regclass::text, count(*) FROM readings GROUP BY 1").fetchall()
        )
    assert counts == {"readings_2024_01": 48 * 31, "readings_2024_02": 48 * 29, "readings_2024_03": 48 * 10,
                      "readings_default": 1}  # fmt: skip
    totals = pg.profile_totals([pg.get_member("m").profile_id], "demand")
    assert totals.kwh_sum.sum() == pytest.approx(0.25 * periods.size + 1.0)


def test_storage_url_selects_postgresql(tmp_path: Path) -> None:
    url = fresh_database()
    with running_node(tmp_path / "node", env={"COOPFED_STORAGE__URL": url}) as (node, _):
        assert isinstance(node.store, PostgresStore)
        assert node.store.url == url
        node.store.create_member("m", "A member", ConsentSettings(), admitted_by="test")
        accounts = Accounts(node.store)  # the portal's rows, on the store's connections
        accounts.add("m", "member@example.org", hash_password("a long enough password"))
        with pytest.raises(AlreadyExists):
            accounts.add("m", "member@example.org", "")
        accounts.add_passkey("m", b"credential", b"key", 1)
        assert accounts.passkeys("m") == [(b"credential", b"key", 1)]
        token = accounts.open_session("m")
        account = accounts.session(token)
        assert account is not None
        assert (account.member_id, account.admitted) == ("m", True)
        assert accounts.verify_password("member@example.org", "a long enough password").login == account.login
    with running_node(tmp_path / "sqlite-node") as (node, _):
        assert isinstance(node.store, SqliteStore)  # no url: the SQLite file, as always
    settings = node.settings
    with open_store(
        dataclasses.replace(settings, storage=dataclasses.replace(settings.storage, url=url))
    ) as s:
        assert s.get_member("m").display_name == "A member"


def _retried(call: Callable[[], object], within_s: float = 60) -> None:
    """Call until it succeeds, as a client retries UNAVAILABLE; the pool reconnects with backoff."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            call()
            return
        except StorageUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_lost_server_is_unavailable_until_it_returns() -> None:
    bin_dir = binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL server not installed")
    server = PgServer(bin_dir)
    try:
        server.start()
        url = server.fresh_database()
        with PostgresStore(url, timeout_s=2) as store:
            _member(store)
            periods = JAN_2024 + HH * np.arange(48, dtype=np.int64)
            store.put_readings("m", [("demand", periods, np.ones(48))])
            server.kill()
            with pytest.raises(StorageUnavailable):
                store.put_readings("m", [("demand", periods + 86_400, np.ones(48))])
            with pytest.raises(StorageUnavailable):
                store.get_member("m")
            server.restart()
            _retried(lambda: store.put_readings("m", [("demand", periods + 86_400, np.ones(48))]))
            assert sum(b.periods.size for b in store.iter_readings("m")) == 96  # nothing acknowledged lost
    finally:
        server.stop()


def test_backup_and_restore_of_a_postgresql_node_without_its_server_say_why(tmp_path: Path) -> None:
    """Backing up goes through pg_dump (tests/node/test_move.py restores one); no copy of an unused
    SQLite file is made, and a failed pg_dump leaves no file behind."""
    settings = load_settings(
        None, environ={"COOPFED_STORAGE__URL": "postgresql://coopfed@/coopfed?host=/nonexistent"}
    )
    with pytest.raises(FailedPrecondition, match="pg_dump failed"):
        backup(settings, tmp_path / "copy.dump")
    assert not list(tmp_path.iterdir())
    (tmp_path / "copy.dump").write_bytes(b"not a dump")
    with pytest.raises(FailedPrecondition, match="pg_restore failed"):
        restore(settings, tmp_path / "copy.dump")


def test_the_store_sql_is_translated_once_into_postgresql() -> None:
    sql = "SELECT ?2, ?1, ?2 FROM t WHERE x % 2 = 0 AND y = 'a%?' AND id IN (SELECT value FROM json_each(?1))"
    text, order = translate(sql)
    assert text == (
        "SELECT %(p2)s, %(p1)s, %(p2)s FROM t WHERE x %% 2 = 0 AND y = 'a%%?' AND id IN "
        "(SELECT value FROM json_array_elements_text(CAST(%(p1)s AS json)))"
    )
    assert order
    text, order = translate("SELECT json_extract(o.profile_json, '$.name') FROM o WHERE a = :a AND b::int=:b")
    assert text == "SELECT (CAST(o.profile_json AS json) ->> 'name') FROM o WHERE a = %(a)s AND b::int=%(b)s"
    assert not order
