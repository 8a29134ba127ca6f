"""Property: after any uploads, consent changes and erasures, the totals match the readings."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coopfed.node.model import HALF_HOUR, ConsentLevel, ConsentSettings, Flow
from coopfed.node.storage import InvalidData, MemberErased, Store

from .backends import BACKENDS

T0 = 1_711_670_400  # 2024-03-29 00:00 UTC; periods below span four days
MEMBERS = ["m0", "m1", "m2", "m3"]
DATASETS = ["demand", "export"]
CHOICES = [
    ConsentSettings(),
    ConsentSettings(level=ConsentLevel.GREEN),
    ConsentSettings(level=ConsentLevel.GREEN, nudges=True),  # same profile as the one above
    ConsentSettings(level=ConsentLevel.AMBER, choices={"demand": frozenset({Flow.OPEN_DATA})}),
]
PROFILES = sorted({s.profile_id for s in CHOICES})

kwh = st.floats(0, 50, allow_nan=False, allow_infinity=False)
batch = st.tuples(
    st.sampled_from(DATASETS),
    st.dictionaries(st.integers(0, 4 * 48), kwh, max_size=30),  # period index -> kWh
)
upload = st.tuples(st.just("upload"), st.sampled_from(MEMBERS), st.lists(batch, min_size=1, max_size=3))
bad_upload = st.tuples(st.just("bad_upload"), st.sampled_from(MEMBERS), st.lists(batch, max_size=2))
consent = st.tuples(st.just("consent"), st.sampled_from(MEMBERS), st.sampled_from(range(len(CHOICES))))
erase = st.tuples(st.just("erase"), st.sampled_from(MEMBERS), st.none())
operations = st.lists(st.one_of(upload, upload, bad_upload, consent, erase), max_size=25)


class Model:
    """What the store should hold, kept in plain dictionaries."""

    def __init__(self, initial: list[int]) -> None:
        self.readings: dict[str, dict[tuple[str, int], float]] = {m: {} for m in MEMBERS}
        self.profile: dict[str, str | None] = {
            m: CHOICES[c].profile_id for m, c in zip(MEMBERS, initial, strict=True)
        }

    def totals(self, profile_id: str, dataset: str) -> dict[int, tuple[float, int]]:
        sums: dict[int, float] = defaultdict(float)
        counts: dict[int, int] = defaultdict(int)
        for member, held in self.readings.items():
            if self.profile[member] != profile_id:
                continue
            for (ds, period), value in held.items():
                if ds == dataset:
                    sums[period] += value
                    counts[period] += 1
        return {p: (sums[p], counts[p]) for p in sums}


def arrays(pairs: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    periods = T0 + HALF_HOUR * np.array(list(pairs), dtype=np.int64)
    return periods, np.array(list(pairs.values()), dtype=np.float64)


def apply(store: Store, model: Model, op: tuple) -> None:
    kind, member, arg = op
    erased = model.profile[member] is None
    if kind == "upload":
        batches = [(ds, *arrays(pairs)) for ds, pairs in arg]
        if erased:
            with pytest.raises(MemberErased):
                store.put_readings(member, batches)
            return
        before = set(model.readings[member])
        for ds, pairs in arg:
            model.readings[member].update({(ds, int(T0 + HALF_HOUR * i)): v for i, v in pairs.items()})
        keys = [(ds, int(p)) for ds, periods, _ in batches for p in periods]
        replaced = sum(1 for i, key in enumerate(keys) if key in before or key in keys[:i])
        assert store.put_readings(member, batches) == (len(keys) - replaced, replaced)
    elif kind == "bad_upload":  # good batches followed by one bad value: nothing may be written
        batches = [(ds, *arrays(pairs)) for ds, pairs in arg] + [("demand", arrays({0: -1.0})[0], [-1.0])]
        with pytest.raises(MemberErased if erased else InvalidData):
            store.put_readings(member, batches)
    elif kind == "consent":
        if erased:
            with pytest.raises(MemberErased):
                store.set_consent(member, CHOICES[arg])
            return
        store.set_consent(member, CHOICES[arg])
        model.profile[member] = CHOICES[arg].profile_id
    else:
        assert store.erase_member(member) == (0 if erased else len(model.readings[member]))
        model.readings[member] = {}
        model.profile[member] = None


def check(store: Store, model: Model) -> None:
    for profile_id in PROFILES:
        for dataset in DATASETS:
            got = store.profile_totals([profile_id], dataset)
            want = model.totals(profile_id, dataset)
            assert got.period_start.tolist() == sorted(want)
            assert got.member_count.tolist() == [want[p][1] for p in sorted(want)]
            np.testing.assert_allclose(got.kwh_sum, [want[p][0] for p in sorted(want)], rtol=1e-12, atol=1e-9)
    counts = {p: sum(1 for q in model.profile.values() if q == p) for p in PROFILES}
    assert {p.profile_id: p.member_count for p in store.profiles()} == {p: n for p, n in counts.items() if n}
    for member in MEMBERS:
        held = {
            (b.dataset, p): k
            for b in store.iter_readings(member)
            for p, k in zip(b.periods.tolist(), b.kwh.tolist(), strict=True)
        }
        assert held == model.readings[member]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(initial=st.lists(st.sampled_from(range(len(CHOICES))), min_size=4, max_size=4), ops=operations)
def test_totals_always_equal_the_readings_of_each_profiles_members(
    backend: str, initial: list[int], ops: list
) -> None:
    with tempfile.TemporaryDirectory() as folder, BACKENDS[backend](Path(folder)) as store:
        model = Model(initial)
        for member, choice in zip(MEMBERS, initial, strict=True):
            store.create_member(member, member, CHOICES[choice], admitted_by="test")
        for op in ops:
            apply(store, model, op)
            check(store, model)
