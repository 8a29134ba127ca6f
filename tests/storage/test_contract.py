"""The contract every storage backend must keep, run against each one."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from coopfed.node.model import DATASETS, HALF_HOUR, ConsentLevel, ConsentSettings, Flow
from coopfed.node.storage import (
    AlreadyExists,
    InvalidData,
    InvitationUnusable,
    MemberErased,
    MeterTaken,
    NotAnApplicant,
    NotFound,
    ReadingBatch,
    Store,
)

T0 = int(datetime(2024, 3, 30, tzinfo=UTC).timestamp())  # spans the UK clock change: UTC is unaffected
RED = ConsentSettings()
GREEN = ConsentSettings(level=ConsentLevel.GREEN)
AMBER = ConsentSettings(
    level=ConsentLevel.AMBER, choices={"demand": frozenset({Flow.THIRD_PARTY, Flow.OPEN_DATA})}
)


def grid(n: int, first: int = 0) -> np.ndarray:
    return T0 + HALF_HOUR * np.arange(first, first + n, dtype=np.int64)


def all_readings(store: Store, member_id: str, **kwargs) -> dict[tuple[str, int], float]:
    out = {}
    for batch in store.iter_readings(member_id, **kwargs):
        out.update(
            {(batch.dataset, p): k for p, k in zip(batch.periods.tolist(), batch.kwh.tolist(), strict=True)}
        )
    return out


def totals(store: Store, settings: ConsentSettings, dataset: str = "demand") -> dict[int, tuple[float, int]]:
    got = store.profile_totals([settings.profile_id], dataset)
    return {
        p: (k, n)
        for p, k, n in zip(
            got.period_start.tolist(), got.kwh_sum.tolist(), got.member_count.tolist(), strict=True
        )
    }


# members and consent


def test_member_round_trips(store: Store) -> None:
    at = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    created = store.create_member("m1", "Ann Example", AMBER, terms_version="t1", at=at, admitted_by="test")
    fetched = store.get_member("m1")
    assert fetched == created
    assert (fetched.display_name, fetched.settings, fetched.profile_id) == (
        "Ann Example",
        AMBER,
        AMBER.profile_id,
    )
    assert fetched.created_at == at
    assert not fetched.erased


def test_unknown_and_duplicate_members_are_refused(store: Store) -> None:
    store.create_member("m1", "Ann", RED, admitted_by="test")
    with pytest.raises(AlreadyExists):
        store.create_member("m1", "Someone else", GREEN, admitted_by="test")
    assert store.get_member("m1").display_name == "Ann"
    for call in (
        lambda: store.get_member("nobody"),
        lambda: store.consent_history("nobody"),
        lambda: store.set_consent("nobody", GREEN),
        lambda: store.put_readings("nobody", [("demand", grid(2), np.ones(2))]),
        lambda: store.iter_readings("nobody"),  # raised by the call, not on first iteration
        lambda: store.erase_member("nobody"),
    ):
        with pytest.raises(NotFound):
            call()


@pytest.mark.parametrize("member_id", ["", "x" * 129])
def test_member_ids_outside_limits_are_refused(store: Store, member_id: str) -> None:
    with pytest.raises(InvalidData):
        store.create_member(member_id, "Ann", RED, admitted_by="test")


def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(InvalidData, match="timezone"):
        store.create_member("m1", "Ann", RED, at=datetime(2024, 1, 1), admitted_by="test")
    with pytest.raises(NotFound):
        store.get_member("m1")


def test_consent_history_records_what_changed(store: Store) -> None:
    t = datetime(2024, 1, 1, tzinfo=UTC)
    store.create_member("m1", "Ann", RED, terms_version="t1", at=t, admitted_by="test")
    store.set_consent("m1", AMBER, terms_version="t1", at=t + timedelta(days=1))
    record = store.set_consent(
        "m1", RED, terms_version="t2", withdrawal_reason="moving house", at=t + timedelta(days=2)
    )
    history = store.consent_history("m1")
    assert [r.at for r in history] == [t, t + timedelta(days=1), t + timedelta(days=2)]
    assert history[-1] == record
    assert history[0].changes == ("joined at level red", "terms: t1")
    assert history[1].changes == ("level: red -> amber", "demand: now allows open_data, third_party")
    assert record.changes == (
        "level: amber -> red",
        "demand: no longer allows open_data, third_party",
        "terms: t1 -> t2",
    )
    assert (record.withdrawal_reason, record.terms_version) == ("moving house", "t2")
    assert [r.settings for r in history] == [RED, AMBER, RED]
    assert [r.profile_id for r in history] == [RED.profile_id, AMBER.profile_id, RED.profile_id]
    assert store.get_member("m1").settings == RED


def test_nudges_are_recorded_but_do_not_change_the_profile(store: Store) -> None:
    store.create_member("m1", "Ann", GREEN, admitted_by="test")
    store.put_readings("m1", [("demand", grid(3), np.ones(3))])
    with_nudges = ConsentSettings(level=ConsentLevel.GREEN, nudges=True)
    record = store.set_consent("m1", with_nudges)
    assert record.changes == ("nudges: off -> on",)
    assert with_nudges.profile_id == GREEN.profile_id
    assert store.get_member("m1").settings.nudges
    assert [(p.profile_id, p.member_count) for p in store.profiles()] == [(GREEN.profile_id, 1)]
    assert totals(store, GREEN) == {int(p): (1.0, 1) for p in grid(3)}


def test_profiles_count_members_by_consent_profile(store: Store) -> None:
    for i, settings in enumerate([GREEN, GREEN, AMBER, RED]):
        store.create_member(f"m{i}", "x", settings, admitted_by="test")
    store.set_consent("m3", GREEN)
    store.create_member("applicant", "x", RED)  # not admitted: in no profile's count
    got = {p.profile_id: (p.settings, p.member_count) for p in store.profiles()}
    assert got == {GREEN.profile_id: (GREEN, 3), AMBER.profile_id: (AMBER, 1)}
    assert store.profiles_in_use() == {GREEN.profile_id: GREEN, AMBER.profile_id: AMBER}
    store.erase_member("m2")
    assert store.profiles_in_use() == {GREEN.profile_id: GREEN}


def test_consent_change_moves_readings_between_profile_totals(store: Store) -> None:
    store.create_member("a", "A", GREEN, admitted_by="test")
    store.create_member("b", "B", GREEN, admitted_by="test")
    store.put_readings("a", [("demand", grid(4), np.array([1.0, 2.0, 3.0, 4.0]))])
    store.put_readings("b", [("demand", grid(2, first=2), np.array([10.0, 20.0]))])
    store.set_consent("a", AMBER)
    assert totals(store, GREEN) == {int(p): (k, 1) for p, k in zip(grid(2, 2), [10.0, 20.0], strict=True)}
    assert totals(store, AMBER) == {
        int(p): (k, 1) for p, k in zip(grid(4), [1.0, 2.0, 3.0, 4.0], strict=True)
    }
    store.set_consent("a", GREEN)
    assert totals(store, AMBER) == {}
    assert totals(store, GREEN) == {
        int(p): (k, n) for p, k, n in zip(grid(4), [1.0, 2.0, 13.0, 24.0], [1, 1, 2, 2], strict=True)
    }


# readings


def test_upload_replaces_readings_for_periods_already_held(store: Store) -> None:
    store.create_member("m1", "Ann", GREEN, admitted_by="test")
    first = store.put_readings("m1", [("demand", grid(4), np.full(4, 1.0))])
    assert (first.inserted, first.replaced) == (4, 0)
    inserted, replaced = store.put_readings("m1", [("demand", grid(4, first=2), np.full(4, 5.0))])
    assert (inserted, replaced) == (2, 2)
    expected = dict(zip(grid(6).tolist(), [1.0, 1.0, 5.0, 5.0, 5.0, 5.0], strict=True))
    assert all_readings(store, "m1") == {("demand", p): k for p, k in expected.items()}
    assert totals(store, GREEN) == {p: (k, 1) for p, k in expected.items()}


def test_large_uploads_overlapping_earlier_ones(store: Store) -> None:
    store.create_member("m1", "Ann", GREEN, admitted_by="test")
    store.put_readings("m1", [("demand", grid(2500), np.full(2500, 1.0))])
    inserted, replaced = store.put_readings("m1", [("demand", grid(3000, first=1700), np.full(3000, 2.0))])
    assert (inserted, replaced) == (2200, 800)
    got = store.profile_totals([GREEN.profile_id], "demand")
    assert got.period_start.tolist() == grid(4700).tolist()
    assert got.kwh_sum.tolist() == [1.0] * 1700 + [2.0] * 3000
    assert set(got.member_count.tolist()) == {1}


def test_batches_apply_in_order_within_one_upload(store: Store) -> None:
    store.create_member("m1", "Ann", GREEN, admitted_by="test")
    result = store.put_readings(
        "m1",
        [
            ReadingBatch("demand", grid(2), np.array([1.0, 2.0])),
            ReadingBatch("generation", grid(2), np.array([7.0, 8.0])),
            ReadingBatch("demand", grid(1, first=1), np.array([9.0])),
        ],
    )
    assert (result.inserted, result.replaced) == (4, 1)
    got = all_readings(store, "m1")
    assert got == {
        ("demand", T0): 1.0,
        ("demand", T0 + HALF_HOUR): 9.0,
        ("generation", T0): 7.0,
        ("generation", T0 + HALF_HOUR): 8.0,
    }


def test_unsorted_uploads_are_stored_in_period_order(store: Store) -> None:
    store.create_member("m1", "Ann", GREEN, admitted_by="test")
    periods = grid(5)[[3, 0, 4, 1, 2]]
    store.put_readings("m1", [("demand", periods, (periods - T0) / HALF_HOUR)])  # kWh: the index
    (batch,) = store.iter_readings("m1")
    assert batch.periods.tolist() == sorted(periods.tolist())
    assert batch.kwh.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert batch.periods.dtype == np.int64
    assert batch.kwh.dtype == np.float64


BAD_BATCHES = {
    "negative kwh": ("demand", grid(2), np.array([1.0, -0.5])),
    "nan kwh": ("demand", grid(2), np.array([1.0, np.nan])),
    "infinite kwh": ("demand", grid(2), np.array([np.inf, 1.0])),
    "off the half hour": ("demand", grid(2) + 60, np.ones(2)),
    "negative period": ("demand", np.array([-HALF_HOUR, 0]), np.ones(2)),
    "period given twice": ("demand", np.array([T0, T0]), np.ones(2)),
    "unknown dataset": ("gas", grid(2), np.ones(2)),
    "lengths differ": ("demand", grid(3), np.ones(2)),
    "float periods": ("demand", grid(2).astype(float) + 0.5, np.ones(2)),
    "two-dimensional": ("demand", grid(4).reshape(2, 2), np.ones((2, 2))),
    "text kwh": ("demand", grid(2), np.array(["1", "2"])),
    "periods beyond int64": ("demand", np.array([2**64 - 2], dtype=np.uint64), np.ones(1)),
}


@pytest.mark.parametrize("bad", BAD_BATCHES.values(), ids=BAD_BATCHES.keys())
def test_bad_values_are_refused_and_nothing_of_the_upload_is_written(store: Store, bad: tuple) -> None:
    store.create_member("m1", "Ann", GREEN, admitted_by="test")
    store.put_readings("m1", [("demand", grid(2), np.array([3.0, 4.0]))])
    good = ("generation", grid(3), np.ones(3))
    replacing = ("demand", grid(2), np.array([30.0, 40.0]))
    with pytest.raises(InvalidData):
        store.put_readings("m1", [good, replacing, bad])
    assert all_readings(store, "m1") == {("demand", T0): 3.0, ("demand", T0 + HALF_HOUR): 4.0}
    assert totals(store, GREEN) == {T0: (3.0, 1), T0 + HALF_HOUR: (4.0, 1)}
    assert totals(store, GREEN, "generation") == {}


def test_empty_batches_write_nothing(store: Store) -> None:
    store.create_member("m1", "Ann", GREEN, admitted_by="test")
    assert store.put_readings("m1", [("demand", np.array([], dtype=np.int64), np.array([]))]) == (0, 0)
    assert store.put_readings("m1", []) == (0, 0)
    assert list(store.iter_readings("m1")) == []


def test_iter_readings_filters_and_chunks(store: Store) -> None:
    store.create_member("m1", "Ann", GREEN, admitted_by="test")
    store.put_readings("m1", [(ds, grid(10), np.arange(10.0) + i) for i, ds in enumerate(DATASETS)])
    chunks = list(store.iter_readings("m1", chunk=4))
    assert [(c.dataset, c.periods.size) for c in chunks] == [
        (ds, n) for ds in sorted(DATASETS, key=DATASETS.index) for n in (4, 4, 2)
    ]
    window = list(
        store.iter_readings("m1", dataset="generation", start=int(grid(1, 3)[0]), end=int(grid(1, 6)[0]))
    )
    assert len(window) == 1
    assert window[0].periods.tolist() == grid(3, first=3).tolist()  # start inclusive, end exclusive
    assert window[0].kwh.tolist() == [4.0, 5.0, 6.0]
    with pytest.raises(InvalidData):
        store.iter_readings("m1", dataset="gas")


def test_iter_readings_reads_one_snapshot(store: Store) -> None:
    store.create_member("m1", "Ann", GREEN, admitted_by="test")
    store.put_readings("m1", [("demand", grid(6), np.ones(6)), ("export", grid(2), np.ones(2))])
    stream = store.iter_readings("m1", chunk=3)
    first = next(stream)
    store.put_readings("m1", [("demand", grid(6), np.full(6, 9.0)), ("export", grid(2), np.full(2, 9.0))])
    rest = list(stream)
    assert first.kwh.tolist() == [1.0] * 3
    assert [c.kwh.tolist() for c in rest] == [[1.0] * 3, [1.0] * 2]
    assert set(all_readings(store, "m1").values()) == {9.0}


# erasure


def test_erasure_removes_readings_and_personal_details_and_keeps_consent_history(store: Store) -> None:
    store.create_member("gone", "Ann Example", GREEN, terms_version="t1", admitted_by="test")
    store.create_member("stays", "Bob", GREEN, admitted_by="test")
    store.put_readings("gone", [("demand", grid(3), np.ones(3)), ("export", grid(2), np.ones(2))])
    store.put_readings("stays", [("demand", grid(2), np.full(2, 2.0))])
    assert store.erase_member("gone", reason="leaving the co-op") == 5
    member = store.get_member("gone")
    assert member.erased
    assert member.display_name == ""
    assert member.profile_id == ""
    assert member.settings == RED
    history = store.consent_history("gone")
    assert len(history) == 2
    assert history[0].settings == GREEN
    assert history[-1].withdrawal_reason == "leaving the co-op"
    assert history[-1].terms_version == "t1"
    assert history[-1].changes == ("erased: readings and personal details deleted",)
    assert list(store.iter_readings("gone")) == []
    assert totals(store, GREEN) == {T0: (2.0, 1), T0 + HALF_HOUR: (2.0, 1)}
    assert totals(store, GREEN, "export") == {}
    assert [(p.profile_id, p.member_count) for p in store.profiles()] == [(GREEN.profile_id, 1)]


def test_an_erased_member_cannot_be_written_to_or_recreated(store: Store) -> None:
    store.create_member("m1", "Ann", GREEN, admitted_by="test")
    store.erase_member("m1")
    with pytest.raises(MemberErased):
        store.put_readings("m1", [("demand", grid(1), np.ones(1))])
    with pytest.raises(MemberErased):
        store.set_consent("m1", GREEN)
    with pytest.raises(AlreadyExists):
        store.create_member("m1", "Ann again", GREEN, admitted_by="test")
    assert store.erase_member("m1") == 0
    assert len(store.consent_history("m1")) == 2


# aggregation


def test_profile_totals_sum_over_the_profiles_asked_for(store: Store) -> None:
    for member, settings in [("a", GREEN), ("b", AMBER), ("c", RED)]:
        store.create_member(member, member, settings, admitted_by="test")
    store.put_readings("a", [("demand", grid(3), np.array([1.0, 2.0, 3.0]))])
    store.put_readings("b", [("demand", grid(2, first=1), np.array([10.0, 20.0]))])
    store.put_readings("c", [("demand", grid(3), np.full(3, 100.0))])
    got = store.profile_totals([GREEN.profile_id, AMBER.profile_id, "no-such-profile"], "demand")
    assert got.period_start.tolist() == grid(3).tolist()
    assert got.kwh_sum.tolist() == [1.0, 12.0, 23.0]
    assert got.member_count.tolist() == [1, 2, 2]
    window = store.profile_totals(
        [GREEN.profile_id], "demand", start=int(grid(1, 1)[0]), end=int(grid(1, 2)[0])
    )
    assert (window.period_start.tolist(), window.kwh_sum.tolist()) == ([int(grid(1, 1)[0])], [2.0])
    empty = store.profile_totals([], "demand")
    assert empty.period_start.size == 0
    assert empty.period_start.dtype == np.int64
    with pytest.raises(TypeError):
        store.profile_totals(GREEN.profile_id, "demand")
    with pytest.raises(InvalidData):
        store.profile_totals([GREEN.profile_id], "gas")


def test_totals_are_exact_when_a_huge_reading_is_replaced(store: Store) -> None:
    store.create_member("m1", "Ann", GREEN, admitted_by="test")
    store.create_member("m2", "Bob", GREEN, admitted_by="test")
    store.put_readings("m1", [("demand", grid(1), np.array([1e6]))])
    store.put_readings("m2", [("demand", grid(1), np.array([0.001]))])
    store.put_readings("m1", [("demand", grid(1), np.array([0.0]))])
    assert totals(store, GREEN) == {T0: (0.001, 2)}


def test_readings_beyond_any_meter_are_refused(store: Store) -> None:
    store.create_member("m1", "Ann", GREEN, admitted_by="test")
    with pytest.raises(InvalidData):
        store.put_readings("m1", [("demand", grid(1), np.array([1e300]))])
    assert all_readings(store, "m1") == {}


def test_profile_totals_span_days(store: Store) -> None:
    store.create_member("m1", "Ann", GREEN, admitted_by="test")
    periods = grid(48 * 3 + 5, first=40)  # part of one day, two whole days, part of a fourth
    store.put_readings("m1", [("demand", periods, np.ones(periods.size))])
    got = store.profile_totals([GREEN.profile_id], "demand", start=int(periods[3]), end=int(periods[-2]))
    assert got.period_start.tolist() == periods[3:-2].tolist()
    assert set(got.kwh_sum.tolist()) == {1.0}
    assert set(got.member_count.tolist()) == {1}


def test_newest_period_is_the_latest_half_hour_held_by_anyone(store: Store) -> None:
    assert store.newest_period() is None
    store.create_member("m1", "Ann", GREEN, admitted_by="test")
    store.create_member("m2", "Bob", RED, admitted_by="test")
    store.put_readings("m1", [("demand", grid(3), np.ones(3))])
    assert store.newest_period() == int(grid(3)[-1])
    late = grid(1, first=48 * 2 + 7)  # two days later, in another profile and dataset
    store.put_readings("m2", [("generation", late, np.zeros(1))])  # a reading of 0 kWh still counts
    assert store.newest_period() == int(late[0])
    store.erase_member("m2")  # erased readings are no longer held
    assert store.newest_period() == int(grid(3)[-1])


# concurrency: the node calls the store from a pool of threads


def test_concurrent_writers_and_readers_from_threads(store: Store) -> None:
    members = [f"m{i}" for i in range(6)]
    for member in members:
        store.create_member(member, member, GREEN, admitted_by="test")
    errors: list[BaseException] = []

    def write(member: str) -> None:
        try:
            for day in range(5):
                store.put_readings(member, [("demand", grid(48, first=48 * day), np.ones(48))])
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def read() -> None:
        try:
            for _ in range(20):
                got = store.profile_totals([GREEN.profile_id], "demand")
                assert set(got.member_count.tolist()) <= set(range(1, 7))
                list(store.iter_readings(members[0]))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(m,)) for m in members]
    threads += [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    got = store.profile_totals([GREEN.profile_id], "demand")
    assert got.period_start.size == 240
    assert set(got.kwh_sum.tolist()) == {6.0}
    assert set(got.member_count.tolist()) == {6}


def test_calls_through_asyncio_to_thread(store: Store) -> None:
    async def scenario() -> list:
        await asyncio.gather(
            *(
                asyncio.to_thread(store.create_member, f"m{i}", "x", GREEN, admitted_by="test")
                for i in range(4)
            )
        )
        uploads = [
            asyncio.to_thread(store.put_readings, f"m{i}", [("demand", grid(10), np.full(10, float(i)))])
            for i in range(4)
        ]
        await asyncio.gather(*uploads)
        stream = await asyncio.to_thread(store.iter_readings, "m3", chunk=4)
        chunks = []
        while (chunk := await asyncio.to_thread(next, stream, None)) is not None:
            chunks.append(chunk)  # each chunk may be fetched on a different thread
        return chunks

    chunks = asyncio.run(scenario())
    assert [c.periods.size for c in chunks] == [4, 4, 2]
    assert totals(store, GREEN) == {int(p): (6.0, 4) for p in grid(10)}


# admission: only admitted members count


def test_an_applicant_counts_toward_nothing_until_admitted(store: Store) -> None:
    store.create_member("real", "Ann", GREEN, admitted_by="board:test")
    store.create_member("fake", "Fake", GREEN)
    assert store.get_member("fake").status == "applicant"
    store.put_readings("real", [("demand", grid(2), np.array([1.0, 2.0]))])
    store.put_readings("fake", [("demand", grid(2), np.array([10.0, 20.0]))])
    assert totals(store, GREEN) == {int(grid(1)[0]): (1.0, 1), int(grid(2)[1]): (2.0, 1)}
    assert [(p.profile_id, p.member_count) for p in store.profiles()] == [(GREEN.profile_id, 1)]
    assert [m.member_id for m in store.applicants()] == ["fake"]

    admitted = store.admit_member("fake", by="board:ann")
    assert (admitted.status, admitted.admitted_by) == ("admitted", "board:ann")
    assert totals(store, GREEN) == {int(grid(1)[0]): (11.0, 2), int(grid(2)[1]): (22.0, 2)}
    assert store.profiles()[0].member_count == 2
    assert store.applicants() == []
    assert store.admit_member("fake", by="board:bob").admitted_by == "board:ann"  # once only
    assert totals(store, GREEN)[int(grid(1)[0])] == (11.0, 2)


def test_an_applicants_consent_changes_and_erasure_leave_the_totals_alone(store: Store) -> None:
    store.create_member("a", "A", GREEN)
    store.put_readings("a", [("demand", grid(3), np.ones(3))])
    store.set_consent("a", AMBER)
    store.put_readings("a", [("demand", grid(3), np.full(3, 2.0))])  # replaces, still uncounted
    assert totals(store, GREEN) == totals(store, AMBER) == {}
    store.admit_member("a", by="board:test")
    assert totals(store, AMBER) == {int(p): (2.0, 1) for p in grid(3)}
    store.set_consent("a", GREEN)
    assert totals(store, AMBER) == {}
    assert len(totals(store, GREEN)) == 3
    store.create_member("b", "B", GREEN)
    store.put_readings("b", [("demand", grid(3), np.ones(3))])
    assert store.erase_member("b") == 3
    assert totals(store, GREEN) == {int(p): (2.0, 1) for p in grid(3)}


def test_a_refused_applicant_stays_out_and_an_admitted_member_cannot_be_refused(store: Store) -> None:
    store.create_member("a", "A", GREEN)
    refused = store.refuse_member("a", reason="no such address in the co-op")
    assert (refused.status, refused.refusal_reason) == ("refused", "no such address in the co-op")
    assert store.applicants() == []
    assert store.profiles() == []
    store.create_member("b", "B", GREEN, admitted_by="board:test")
    with pytest.raises(NotAnApplicant):
        store.refuse_member("b", reason="changed our minds")
    assert store.get_member("b").status == "admitted"


def test_a_meter_belongs_to_one_member_until_erased(store: Store) -> None:
    meter = bytes(range(32))
    store.create_member("a", "A", GREEN, meter=meter)
    assert store.get_member("a").has_meter
    with pytest.raises(MeterTaken):
        store.create_member("b", "B", GREEN, meter=meter)
    with pytest.raises(NotFound):
        store.get_member("b")  # nothing written
    store.erase_member("a")
    assert store.create_member("b", "B", GREEN, meter=meter).has_meter


def test_meter_holders_name_each_held_meter_and_no_erased_one(store: Store) -> None:
    meters = [bytes([i]) * 32 for i in range(3)]
    store.create_member("a", "A", GREEN, meter=meters[0])
    store.create_member("b", "B", GREEN, meter=meters[1])
    store.create_member("c", "C", GREEN)
    many = [bytes([9, i % 256, i // 256]) * 10 + b"xx" for i in range(1200)]  # several statements
    assert store.meter_holders([*meters, *many]) == {meters[0]: "a", meters[1]: "b"}
    store.erase_member("b")
    assert store.meter_holders(meters) == {meters[0]: "a"}
    assert store.meter_holders([]) == {}


def test_readings_of_many_members_store_as_each_one_would(store: Store) -> None:
    store.create_member("a", "A", GREEN, admitted_by="test")
    store.create_member("b", "B", GREEN)  # an applicant: held, in no totals
    store.create_member("gone", "Gone", GREEN, admitted_by="test")
    store.erase_member("gone")
    store.put_readings("a", [("demand", grid(2), np.full(2, 1.0))])
    results = store.put_readings_of(
        [
            ("a", [("demand", grid(4), np.full(4, 2.0))]),
            ("b", [("demand", grid(3), np.full(3, 0.5))]),
            ("gone", [("demand", grid(1), np.full(1, 9.0))]),
            ("nobody", [("demand", grid(1), np.full(1, 9.0))]),
        ]
    )
    assert results[:2] == [(2, 2), (3, 0)]
    assert isinstance(results[2], MemberErased)
    assert isinstance(results[3], NotFound)
    assert all_readings(store, "a") == {("demand", int(p)): 2.0 for p in grid(4)}
    assert len(all_readings(store, "b")) == 3
    assert totals(store, GREEN) == {int(p): (2.0, 1) for p in grid(4)}
    with pytest.raises(InvalidData):
        store.put_readings_of(
            [("a", [("demand", grid(1), np.full(1, 1.0))]), ("b", [("gas", grid(1), [1.0])])]
        )
    assert all_readings(store, "a")[("demand", int(grid(1)[0]))] == 2.0, "nothing of a refused call"
    assert store.put_readings_of([]) == []


def test_an_invitation_admits_once_and_not_after_it_expires(store: Store) -> None:
    now = datetime.now(UTC)
    store.create_invitation("inv-1", b"1" * 32, now + timedelta(days=1), created_by="board:test")
    store.create_invitation("inv-2", b"2" * 32, now - timedelta(seconds=1), created_by="board:test")
    member = store.create_member("a", "A", GREEN, invitation=b"1" * 32)
    assert (member.status, member.admitted_by) == ("admitted", "invitation inv-1")
    for code in (b"1" * 32, b"2" * 32, b"3" * 32):  # used, expired, never issued
        with pytest.raises(InvitationUnusable):
            store.create_member("b", "B", GREEN, invitation=code)
    with pytest.raises(NotFound):
        store.get_member("b")


def test_concurrent_uploads_commit_together_and_each_fails_alone(store: Store) -> None:
    for member_id in "abcde":
        store.create_member(member_id, member_id, GREEN, admitted_by="test")
    store.put_readings("e", [("demand", grid(1), np.full(1, 5.0))])
    queued, outcomes = threading.Event(), {}

    def leader_waits() -> None:  # the first upload's commit waits until the others have queued
        queued.wait(10)

    def gone() -> None:
        raise ConnectionAbortedError("the caller went away")

    uploads = {  # name: (member, kwh, before_commit)
        "first": ("a", 1.0, leader_waits),
        "good": ("b", 2.0, None),
        "replacing": ("e", 4.0, None),
        "refused": ("c", -1.0, None),
        "cut off": ("d", 3.0, gone),
        "unknown": ("zz", 1.0, None),
    }

    def upload(name: str) -> None:
        member_id, kwh, check = uploads[name]
        try:
            outcomes[name] = store.put_readings(
                member_id, [("demand", grid(2), np.full(2, kwh))], before_commit=check
            )
        except Exception as exc:  # noqa: BLE001 - each outcome is asserted below
            outcomes[name] = exc

    threads = {name: threading.Thread(target=upload, args=(name,)) for name in uploads}
    threads["first"].start()
    while not store._uploads._busy:  # type: ignore[attr-defined]
        threading.Event().wait(0.001)
    for name in list(uploads)[1:]:
        threads[name].start()
    while len(store._uploads._queue) < len(uploads) - 1:  # type: ignore[attr-defined]
        threading.Event().wait(0.001)
    queued.set()
    for thread in threads.values():
        thread.join(30)
    assert outcomes["first"] == outcomes["good"] == (2, 0)
    assert outcomes["replacing"] == (1, 1)
    assert isinstance(outcomes["refused"], InvalidData)
    assert isinstance(outcomes["cut off"], ConnectionAbortedError)
    assert isinstance(outcomes["unknown"], NotFound)
    assert all_readings(store, "b") == {("demand", int(p)): 2.0 for p in grid(2)}
    assert all_readings(store, "c") == all_readings(store, "d") == {}
    assert all_readings(store, "e") == {("demand", int(p)): 4.0 for p in grid(2)}
    assert totals(store, GREEN) == {int(p): (7.0, 3) for p in grid(2)}  # a, b and e, in one slot each
