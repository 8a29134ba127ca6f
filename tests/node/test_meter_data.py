"""MeterDataService.ImportReadings over real gRPC, on SQLite and PostgreSQL: many meters' readings
per message mapped to members by meter key, unmatched meters counted, bad messages kept out whole."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from coopfed.node.client import bearer
from coopfed.node.credentials import issue_board_token
from coopfed.node.meters import meter_hash
from coopfed.node.model import ConsentLevel, ConsentSettings
from coopfed.v1 import meterdata_pb2, meterdata_pb2_grpc

from ..pgserver import fresh_database
from .conftest import running_node
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
