"""MeterDataService.ImportReadings over real gRPC, on SQLite and PostgreSQL: many meters' readings
per message mapped to members by meter key, unmatched meters counted, bad messages kept out whole."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import numpy as np
import psycopg
import pytest

from coopfed.federation.keys import KeyRing
from coopfed.node import cli
from coopfed.node.cli.meters import COLUMNS
from coopfed.node.client import bearer
from coopfed.node.credentials import issue_board_token
from coopfed.node.meters import meter_hash
from coopfed.node.model import ConsentLevel, ConsentSettings
from coopfed.node.runtime import init_node
from coopfed.node.settings import load_settings
from coopfed.node.storage.configured import open_store
from coopfed.v1 import meterdata_pb2, meterdata_pb2_grpc

from ..pgserver import fresh_database
from .conftest import POLICIES, running_node
from .test_crash_safety import assert_all_acknowledged_kept, kill_mid_calls, start, stored_calls
from .test_member_service import error_detail

HH = 1800
BASE = (int(time.time()) // HH - 48 * 10) * HH
GREEN = ConsentSettings(level=ConsentLevel.GREEN)
METERS = {"ada": "1200 0000 0000 1", "bo": "1200000000002", "cy": "1200000000003"}


@pytest.fixture(params=["sqlite", "postgresql"])
def coop(request, tmp_path: Path):
    env = {"COOPFED_STORAGE__URL": fresh_database()} if request.param == "postgresql" else {}
    with running_node(tmp_path / "n", env=env) as (node, address), grpc.insecure_channel(address) as ch:
        for name, meter in METERS.items():
            node.store.create_member(
                name, name, GREEN, meter=meter_hash(node.settings.base_dir, meter),
                admitted_by="" if name == "cy" else "test",
            )  # fmt: skip
        board = bearer(issue_board_token(node.node_id, node.keys, "Board", 3600))
        yield node, meterdata_pb2_grpc.MeterDataServiceStub(ch), board


def message(rows: list[tuple[str, int, float]], dataset: str = "demand") -> meterdata_pb2.MeterReadings:
    meters, periods, kwh = zip(*rows, strict=True) if rows else ((), (), ())
    return meterdata_pb2.MeterReadings(
        dataset=dataset, meter_ids=list(meters), period_start_unix=list(periods), kwh=list(kwh)
    )


def held(node, member_id: str) -> dict[int, float]:
    return {
        int(p): float(k)
        for batch in node.store.iter_readings(member_id)
        for p, k in zip(batch.periods, batch.kwh, strict=True)
    }


def test_import_maps_meters_to_members_and_counts_the_rest(coop):
    node, stub, board = coop
    rows = [(METERS["ada"], BASE + HH * i, 0.5) for i in range(48)]
    rows += [("1200000000002", BASE + HH * i, 0.25) for i in range(10)]
    rows += [("9999999999999", BASE, 1.0), ("9999999999999", BASE + HH, 1.0), ("8888", BASE, 2.0)]
    rows += [(METERS["cy"], BASE, 3.0)]
    order = np.random.default_rng(1).permutation(len(rows))  # a provider's export, in any order
    summary = stub.ImportReadings(iter([message([rows[i] for i in order])]), metadata=board)
    assert (summary.inserted, summary.replaced, summary.members, summary.messages) == (59, 0, 3, 1)
    assert (summary.unmatched_readings, summary.unmatched_meters) == (3, 2)
    assert held(node, "ada") == {BASE + HH * i: 0.5 for i in range(48)}
    assert held(node, "bo") == {BASE + HH * i: 0.25 for i in range(10)}
    assert held(node, "cy") == {BASE: 3.0}
    # totals as uploads keep them: admitted members only (cy is an applicant)
    totals = node.store.profile_totals([GREEN.profile_id], "demand", BASE, BASE + 48 * HH)
    by_period = dict(zip(totals.period_start.tolist(), totals.member_count.tolist(), strict=True))
    assert by_period[BASE] == 2
    assert by_period[BASE + 20 * HH] == 1
    assert totals.kwh_sum[0] == pytest.approx(0.75)

    again = stub.ImportReadings(iter([message([(METERS["ada"], BASE, 0.75)])]), metadata=board)
    assert (again.inserted, again.replaced) == (0, 1)
    assert held(node, "ada")[BASE] == 0.75


def test_an_import_leaves_postgresql_planning_for_the_rows_it_holds(tmp_path):
    """Autovacuum analyses a grown table only a minute or more later; a release planned before
    then for tables of a few rows joins member by member."""
    url = fresh_database()
    with running_node(tmp_path / "n", env={"COOPFED_STORAGE__URL": url}) as (node, address):
        node.store.create_member("ada", "ada", GREEN, meter=meter_hash(node.settings.base_dir, METERS["ada"]),
                                 admitted_by="test")  # fmt: skip
        board = bearer(issue_board_token(node.node_id, node.keys, "Board", 3600))
        with psycopg.connect(url, autocommit=True) as conn, grpc.insecure_channel(address) as channel:
            analysed = conn.execute(ANALYSED).fetchall()
            stub = meterdata_pb2_grpc.MeterDataServiceStub(channel)
            stub.ImportReadings(iter([message([(METERS["ada"], BASE, 0.5)])]), metadata=board)
            assert analysed == [("members", False), ("reading_extents", False)]
            assert conn.execute(ANALYSED).fetchall() == [("members", True), ("reading_extents", True)]


ANALYSED = """SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables
WHERE relname IN ('members', 'reading_extents') ORDER BY relname"""


def test_an_erased_members_meter_is_unmatched(coop):
    node, stub, board = coop
    node.store.erase_member("bo")
    summary = stub.ImportReadings(iter([message([(METERS["bo"], BASE, 0.5)])]), metadata=board)
    assert (summary.inserted, summary.unmatched_readings, summary.unmatched_meters) == (0, 1, 1)
    assert held(node, "bo") == {}


LATER = (int(time.time()) // HH + 2) * HH


@pytest.mark.parametrize(
    ("bad", "field", "code"),
    [
        (message([(METERS["ada"], BASE, -0.1)]), "batches[1].kwh[0]", "reading.negative"),
        (message([(METERS["bo"], BASE, 0.1), (METERS["ada"], BASE, float("nan"))]),
         "batches[1].kwh[1]", "reading.not_finite"),
        (message([(METERS["ada"], LATER, 0.1)]), "batches[1].period_start_unix[0]", "reading.future"),
        (message([(METERS["ada"], BASE + 7, 0.1)]), "batches[1].period_start_unix[0]", "reading.misaligned"),
        (message([(METERS["ada"], BASE, 0.1), ("bad meter!", BASE, 0.1)]),
         "batches[1].meter_ids[1]", "reading.meter_id"),
        (message([(METERS["ada"], BASE, 0.1), ("", BASE, 0.1)]),
         "batches[1].meter_ids[1]", "reading.meter_id"),
        (message([(METERS["ada"], BASE, 0.1), ("1200 0000 0000 1", BASE, 0.2)]),
         "batches[1].period_start_unix[1]", "reading.duplicate"),
        (message([(METERS["ada"], BASE, 0.1)], dataset="gas"),
         "batches[1].dataset", "reading.unknown_dataset"),
        (meterdata_pb2.MeterReadings(dataset="demand", meter_ids=[METERS["ada"]] * 2,
                                     period_start_unix=[BASE], kwh=[0.1]),
         "batches[1]", "reading.length_mismatch"),
        (meterdata_pb2.MeterReadings(dataset="demand", meter_ids=[METERS["ada"]],
                                     period_start_unix=[BASE], kwh=[0.1, 0.2]),
         "batches[1]", "reading.length_mismatch"),
    ],
)  # fmt: skip
def test_a_bad_message_is_refused_whole_and_earlier_ones_kept(coop, bad, field, code):
    node, stub, board = coop
    good = message([(METERS["bo"], BASE + HH * i, 0.5) for i in range(4)])
    with pytest.raises(grpc.RpcError) as refused:
        stub.ImportReadings(iter([good, bad, good]), metadata=board)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = error_detail(refused.value)
    assert (detail.field, detail.code) == (field, code)
    assert "Traceback" not in refused.value.details()
    assert held(node, "ada") == {}, "nothing of the bad message is kept"
    assert len(held(node, "bo")) == 4, "the message before it was stored"


def test_only_the_board_may_import(coop):
    node, stub, _ = coop
    member = bearer(node.credentials.issue_member_token("ada"))
    for metadata in (member, bearer("not-a-token"), ()):
        with pytest.raises(grpc.RpcError) as refused:
            stub.ImportReadings(iter([message([(METERS["ada"], BASE, 0.5)])]), metadata=metadata)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert held(node, "ada") == {}


def _board_cli(node, address: str, tmp_path: Path, capsys) -> Path:
    board = tmp_path / "board.json"
    config = node.settings.base_dir / "coopfed.toml"
    assert cli.main(["review", "token", "--credentials", str(board), "--config", str(config),
                     "--name", "ada", "--node", address]) == 0  # fmt: skip
    capsys.readouterr()
    return board


def test_the_board_imports_a_csv_export(tmp_path, capsys):
    with running_node(tmp_path / "n") as (node, address):
        node.store.create_member(
            "ada", "ada", GREEN, meter=meter_hash(node.settings.base_dir, METERS["ada"]), admitted_by="test"
        )
        board = _board_cli(node, address, tmp_path, capsys)
        day = time.strftime("%Y-%m-%d", time.gmtime(BASE))
        rows = [f"{METERS['ada']},demand,{day}T0{h}:00+00:00,0.{h}" for h in range(6)]
        export = tmp_path / "export.csv"
        export.write_text("\n".join([",".join(COLUMNS), *rows, f"9999,demand,{day}T01:00Z,1.0"]) + "\n")
        code = cli.main(["meters", "import", str(export), "--credentials", str(board)])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "stored 6 new readings, replaced 0, for 1 members" in out
        assert "not stored: 1 readings of 1 meters that no member of the co-op holds" in out
        assert len(held(node, "ada")) == 6

        export.write_text(f"{','.join(COLUMNS)}\n{METERS['ada']},demand,{day}T02:00Z,-1\n")
        assert cli.main(["meters", "import", str(export), "--credentials", str(board)]) != 0
        said = capsys.readouterr()
        assert "line 2, column kwh" in said.out + said.err
        assert "nothing was sent" in said.out + said.err
        assert "Traceback" not in said.out + said.err


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_mid_import_loses_no_acknowledged_message(tmp_path, backend):
    env = {"COOPFED_STORAGE__URL": fresh_database()} if backend == "postgresql" else {}
    config = init_node(tmp_path, node_id="crash", name="crash", listen="127.0.0.1:0", policies=POLICIES)
    settings = load_settings(config, environ=env)
    store = open_store(settings)
    for name, meter in METERS.items():
        store.create_member(name, name, GREEN, meter=meter_hash(settings.base_dir, meter), admitted_by="test")
    store.close()
    proc, address = start(config, env)
    per = 300  # half-hours per meter per message; 3 meters a message
    first = (int(time.time()) // HH - 400 * per - 48) * HH
    with grpc.insecure_channel(address) as channel:
        stub = meterdata_pb2_grpc.MeterDataServiceStub(channel)
        board = bearer(issue_board_token("crash", KeyRing.load(settings.keys_dir), "ada", 3600))

        def import_message(n: int) -> None:
            periods = first + HH * np.arange(n * per, (n + 1) * per)
            msg = message([(m, int(p), float(n)) for m in METERS.values() for p in periods])
            stub.ImportReadings(iter([msg]), metadata=board)

        acknowledged, failures = kill_mid_calls(proc, import_message)
    stored = stored_calls(config, env, list(METERS))
    assert_all_acknowledged_kept(stored, acknowledged, failures, per * len(METERS))
