"""What the SQLite backend adds to the contract: pragmas, migrations, constraints, on-disk totals."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from coopfed.node import storage
from coopfed.node.model import DATASETS, HALF_HOUR, ConsentLevel, ConsentSettings
from coopfed.node.storage import SchemaError, SchemaTooNew, SqliteStore, StorageBusy, StorageError
from coopfed.node.storage import sqlite_sql as q
from coopfed.node.storage.schema import bundled_migrations, load_migrations, split_statements
from coopfed.node.storage.sqlite_totals import DAY, UNITS_PER_KWH

GREEN = ConsentSettings(level=ConsentLevel.GREEN)
T0 = 1_711_756_800  # 2024-03-30 00:00 UTC
MIGRATIONS = Path(storage.__file__).parent / "migrations"
NEXT = len(bundled_migrations()) + 1  # the number the next migration file will take


def raw(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "node.db"


@pytest.mark.parametrize(("synchronous", "level"), [("FULL", 2), ("NORMAL", 1)])
def test_pragmas(db: Path, synchronous: str, level: int) -> None:
    with SqliteStore(db, synchronous=synchronous) as store:
        assert store._writer.execute("PRAGMA synchronous").fetchone()[0] == level
        assert store._writer.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert raw(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persists in the file


def test_synchronous_off_is_refused(db: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore(db, synchronous="OFF")  # type: ignore[arg-type]


def test_closed_store_refuses_calls(db: Path) -> None:
    store = SqliteStore(db)
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.create_member("m1", "Ann", GREEN, admitted_by="test")
    with pytest.raises(StorageError, match="closed"):
        store.profiles()


def test_a_writer_in_another_process_past_the_busy_timeout_is_reported_busy(db: Path) -> None:
    with SqliteStore(db, busy_timeout_s=0.05) as store:
        other = raw(db)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageBusy):
            store.create_member("m1", "Ann", GREEN, admitted_by="test")
        assert store.profiles() == []  # readers are not blocked by a writer
        other.execute("ROLLBACK")
        store.create_member("m1", "Ann", GREEN, admitted_by="test")


def test_datasets_match_the_domain_model(db: Path) -> None:
    SqliteStore(db).close()
    assert {name for (name,) in raw(db).execute("SELECT name FROM datasets")} == set(DATASETS)


# migrations


def test_migrations_are_recorded_with_checksums_and_applied_once(db: Path) -> None:
    SqliteStore(db).close()
    SqliteStore(db).close()
    rows = raw(db).execute("SELECT version, name, checksum FROM schema_version").fetchall()
    assert [(v, n, c) for v, n, c in rows] == [(m.version, m.name, m.checksum) for m in bundled_migrations()]


@pytest.mark.parametrize(
    ("version", "error", "message"), [(NEXT, SchemaTooNew, "newer"), (NEXT + 3, SchemaError, "gaps")]
)
def test_a_database_newer_than_the_code_is_refused(db: Path, version: int, error: type, message: str) -> None:
    SqliteStore(db).close()
    raw(db).execute("INSERT INTO schema_version VALUES (?, 'future.sql', 'x', '2030-01-01')", (version,))
    with pytest.raises(error, match=message):
        SqliteStore(db)


def test_an_edited_migration_is_refused(db: Path, tmp_path: Path) -> None:
    SqliteStore(db).close()
    edited = tmp_path / "edited"
    shutil.copytree(MIGRATIONS, edited)
    (edited / "0001_init.sql").write_text((MIGRATIONS / "0001_init.sql").read_text() + "\n-- changed\n")
    with pytest.raises(SchemaError, match="must not change"):
        SqliteStore(db, migrations=load_migrations(edited))


def test_a_new_migration_is_applied_on_open(db: Path, tmp_path: Path) -> None:
    SqliteStore(db).close()
    folder = tmp_path / "next"
    shutil.copytree(MIGRATIONS, folder)
    (folder / f"{NEXT:04d}_extra.sql").write_text("CREATE TABLE extra (jti TEXT PRIMARY KEY) STRICT;\n")
    with SqliteStore(db, migrations=load_migrations(folder)) as store:
        assert store.schema_version == NEXT
    assert raw(db).execute("SELECT count(*) FROM extra").fetchone()[0] == 0


def test_a_failing_migration_leaves_the_schema_as_it_was(db: Path, tmp_path: Path) -> None:
    SqliteStore(db).close()
    folder = tmp_path / "broken"
    shutil.copytree(MIGRATIONS, folder)
    (folder / f"{NEXT:04d}_half.sql").write_text(
        "CREATE TABLE half (x INTEGER);\nCREATE TABLE half (y INTEGER);\n"
    )
    with pytest.raises(SchemaError, match=rf"{NEXT:04d}_half\.sql failed.*already exists"):
        SqliteStore(db, migrations=load_migrations(folder))
    conn = raw(db)
    assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == NEXT - 1
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half'").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"0001_init.sql": "", "0003_x.sql": ""}, "without gaps"),
        ({"0001_init.sql": "", "1_bad.sql": ""}, "NNNN_name"),
    ],
)
def test_migration_files_must_be_numbered_in_sequence(tmp_path: Path, files: dict, message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(SchemaError, match=message):
        load_migrations(tmp_path)


def test_split_statements_keeps_trigger_bodies_whole() -> None:
    script = """-- a comment; with a semicolon
CREATE TABLE t (x TEXT DEFAULT ';');
CREATE TRIGGER t_guard BEFORE DELETE ON t
BEGIN
    SELECT RAISE(ABORT, 'no; never');
END;
INSERT INTO t VALUES ('a;b');
-- trailing comment
"""
    statements = split_statements(script)
    assert len(statements) == 3
    assert statements[1].startswith("CREATE TRIGGER")
    assert statements[1].endswith("END;")
    with pytest.raises(SchemaError, match="incomplete"):
        split_statements("CREATE TABLE t (x);\nCREATE TABLE u (y)")


# constraints: the tables refuse garbage written around the store's own checks


def test_readings_table_refuses_garbage(db: Path) -> None:
    with SqliteStore(db) as store:
        store.create_member("m1", "Ann", GREEN, admitted_by="test")
    conn = raw(db)
    insert = "INSERT INTO readings (member_key, dataset_id, period_start, kwh) VALUES (?, ?, ?, ?)"
    conn.execute(insert, (1, 1, T0, 1.5))
    for bad in [(1, 1, T0 + 60, 1.0), (1, 1, -HALF_HOUR, 1.0), (1, 1, T0 + HALF_HOUR, -1.0),
                (1, 1, T0 + HALF_HOUR, float("inf")), (1, 1, T0 + HALF_HOUR, float("nan")),
                (1, 1, T0 + HALF_HOUR, "lots"), (1, 9, T0 + HALF_HOUR, 1.0), (7, 1, T0 + HALF_HOUR, 1.0),
                (1, 1, T0, 2.0)]:  # fmt: skip
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(insert, bad)
    assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == 1


def test_consent_records_are_append_only(db: Path) -> None:
    with SqliteStore(db) as store:
        store.create_member("m1", "Ann", GREEN, admitted_by="test")
    conn = raw(db)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE consent_records SET terms_version = 'forged'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM consent_records")


def test_time_range_scans_use_the_clustered_primary_key(db: Path) -> None:
    SqliteStore(db).close()
    plan = " ".join(
        row[-1] for row in raw(db).execute("EXPLAIN QUERY PLAN " + q.READINGS_RANGE, (1, 1, 0, 1))
    )
    clustered = "USING PRIMARY KEY (member_key=? AND dataset_id=? AND period_start>? AND period_start<?)"
    assert f"SEARCH readings {clustered}" in plan


@pytest.mark.parametrize("n", [0, 1, 1023, 1024, 1440, 5000])
def test_uploads_are_bound_in_a_few_statement_sizes(n: int) -> None:
    sizes = q.load_sizes(n)
    assert sum(sizes) == n
    assert all(size & (size - 1) == 0 and size <= q.LOAD_CHUNK for size in sizes)


# on-disk totals


def decode_totals(conn: sqlite3.Connection) -> dict[tuple[int, int, int], tuple[float, int]]:
    out = {}
    for dataset_id, profile_key, day, sums, counts in conn.execute("SELECT * FROM profile_totals"):
        kwh, members = np.frombuffer(sums, "<i8") / UNITS_PER_KWH, np.frombuffer(counts, "<i4")
        assert members.sum() > 0, "a day row with no members left should have been deleted"
        assert (kwh[members == 0] == 0).all()
        for slot in np.flatnonzero(members).tolist():
            out[dataset_id, profile_key, day * DAY + slot * HALF_HOUR] = (kwh[slot], int(members[slot]))
    return out


def recomputed(conn: sqlite3.Connection) -> dict[tuple[int, int, int], tuple[float, int]]:
    rows = conn.execute(
        "SELECT r.dataset_id, m.profile_key, r.period_start, sum(r.kwh), count(*) FROM readings AS r"
        " JOIN members AS m USING (member_key) GROUP BY 1, 2, 3"
    )
    return {(d, p, t): (k, n) for d, p, t, k, n in rows}


def test_totals_rows_match_readings_and_empty_days_are_deleted(db: Path) -> None:
    amber = ConsentSettings(level=ConsentLevel.AMBER)
    rng = np.random.default_rng(3)
    with SqliteStore(db) as store:
        for i in range(4):
            store.create_member(f"m{i}", "x", GREEN if i % 2 else amber, admitted_by="test")
            periods = T0 + HALF_HOUR * np.arange(i * 30, i * 30 + 100)
            store.put_readings(
                f"m{i}", [("demand", periods, rng.random(100)), ("export", periods[:7], np.ones(7))]
            )
        store.put_readings("m0", [("demand", T0 + HALF_HOUR * np.arange(50, 70), np.zeros(20))])
        store.set_consent("m1", amber)
        conn = raw(db)
        got, want = decode_totals(conn), recomputed(conn)
        assert got.keys() == want.keys()
        for key, (kwh, members) in want.items():
            assert got[key][1] == members
            assert got[key][0] == pytest.approx(kwh, rel=1e-12, abs=1e-12)
        for i in range(4):
            store.erase_member(f"m{i}")
        assert conn.execute("SELECT count(*) FROM profile_totals").fetchone()[0] == 0


def test_totals_over_more_days_than_one_statement_writes(db: Path) -> None:
    periods = T0 + HALF_HOUR * np.arange(400 * 48)
    with SqliteStore(db) as store:
        store.create_member("m1", "Ann", ConsentSettings(), admitted_by="test")
        store.create_member("m2", "Bob", GREEN, admitted_by="test")
        store.put_readings("m1", [("demand", periods, np.full(periods.size, 0.25))])
        store.put_readings("m2", [("demand", periods[::7], np.full(periods[::7].size, 1.0))])
        store.set_consent("m1", GREEN)
        conn = raw(db)
        assert decode_totals(conn) == recomputed(conn)
        got = store.profile_totals([GREEN.profile_id], "demand")
        assert got.period_start.tolist() == periods.tolist()
        assert got.member_count.sum() == periods.size + periods[::7].size


def test_totals_kept_as_floats_before_0010_are_rebuilt_exactly_from_the_readings(db: Path) -> None:
    before = [m for m in bundled_migrations() if m.name < "0010"]
    with SqliteStore(db, migrations=before) as store:
        store.create_member("m1", "x", GREEN, admitted_by="test")
    counts = np.zeros(48, np.int32)
    counts[:3] = 1
    with raw(db) as conn:  # the readings and float64 totals of the old schema, rounding and all
        rows = [(T0 + HALF_HOUR * i, kwh) for i, kwh in enumerate((0.1, 0.2, 0.3))]
        conn.executemany("INSERT INTO readings VALUES (1, 1, ?, ?)", rows)
        conn.execute(
            "INSERT INTO profile_totals VALUES (1, 1, ?, ?, ?)",
            (T0 // 86_400, np.full(48, 0.30000000000000004).tobytes(), counts.tobytes()),
        )
    with SqliteStore(db) as store:
        got = store.profile_totals([GREEN.profile_id], "demand")
        assert got.kwh_sum.tolist() == [0.1, 0.2, 0.3]
        assert got.member_count.tolist() == [1, 1, 1]
    assert raw(db).execute("SELECT count(*) FROM totals_to_rebuild").fetchone()[0] == 0


def test_members_who_joined_before_admission_existed_stay_admitted_and_counted(db: Path) -> None:
    before = [m for m in bundled_migrations() if m.name < "0009"]
    periods = np.arange(3, dtype=np.int64) * HALF_HOUR
    with SqliteStore(db, migrations=before) as old:
        conn = old._writer  # the old schema, written as the old code wrote it
        assert conn is not None
        conn.execute("INSERT INTO profiles (profile_id, settings_json) VALUES (?, '{}')", (GREEN.profile_id,))
        conn.execute(
            "INSERT INTO members (member_id, display_name, created_at, settings_json, profile_key)"
            " VALUES ('old', 'Old', '2024-01-01T00:00:00.000000+00:00', ?, 1)",
            (GREEN.to_json(),),
        )
    with SqliteStore(db) as new:
        member = new.get_member("old")
        assert member.status == "admitted"
        assert member.admitted_at == member.created_at
        new.put_readings("old", [("demand", periods, np.ones(3))])
        assert new.profile_totals([GREEN.profile_id], "demand").member_count.tolist() == [1, 1, 1]
