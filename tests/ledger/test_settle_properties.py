"""Every period balances to the penny: over random neighbourhoods, prices, keys and missing data."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from coopfed.node.ledger.money import apportion, fill, pot, pounds
from coopfed.node.ledger.settle import energy, settle
from coopfed.node.ledger.terms import Terms
from coopfed.node.storage.ledger import PeriodReadings

_kwh = st.one_of(st.just(float("nan")), st.just(0.0), st.floats(0, 50, allow_nan=False))


@st.composite
def neighbourhoods(draw: st.DrawFn) -> tuple[PeriodReadings, Terms]:
    n = draw(st.integers(1, 9))
    periods = draw(st.integers(1, 5))
    members = tuple(f"m-{i:02d}" for i in range(n))
    kwh = {
        name: np.array(
            draw(st.lists(st.lists(_kwh, min_size=periods, max_size=periods), min_size=n, max_size=n))
        )
        for name in ("demand", "generation", "export")
    }
    export, local, grid = sorted(draw(st.lists(st.integers(0, 60_000), min_size=3, max_size=3)))
    key = draw(st.sampled_from(["pro_rata", "equal", "static", "priority"]))
    named = draw(st.lists(st.sampled_from(members), unique=True, min_size=1))
    shares = {m: draw(st.integers(1, 100_000 // len(named))) for m in named}
    terms = Terms(key, key, local, grid, export, 14, tuple(named), shares)
    return PeriodReadings(members, 1704067200 + 1800 * np.arange(periods), kwh), terms


@settings(max_examples=300, deadline=None)
@given(neighbourhoods())
def test_every_period_balances_and_shares_only_what_there_is(case: tuple[PeriodReadings, Terms]) -> None:
    readings, terms = case
    found = energy(readings)
    n = len(readings.member_ids)
    for j, result in enumerate(settle(found, terms)):
        assert int(result.pence.sum()) == 0  # to the penny
        imports, exports = found.imports[:, j], found.exports[:, j]
        bought, sold = result.wh[0 : 4 * n : 4], result.wh[1 : 4 * n : 4]
        matched = min(int(imports.sum()), int(exports.sum()))
        assert int(bought.sum()) == int(sold.sum()) == matched == result.wh[4 * n]
        assert (bought <= imports).all()
        assert (sold <= exports).all()
        assert (bought >= 0).all()
        assert (result.wh[2 : 4 * n : 4] == imports - bought).all()
        local = pot(matched, terms.local_mp)
        assert int(result.pence[0 : 4 * n : 4].sum()) == local == -int(result.pence[1 : 4 * n : 4].sum())
        assert (result.pence[0 : 4 * n : 2] >= 0).all()
        assert (result.pence[1 : 4 * n : 2] <= 0).all()
        missing = sum(
            bool(np.isnan(k[i, j]) and (~np.isnan(k[i])).any())
            for i in range(n)
            for k in [*readings.kwh.values()]
        )
        assert result.missing <= missing
        assert (result.missing == 0) == (missing == 0)


@given(st.integers(0, 10_000), st.lists(st.integers(0, 10_000), min_size=1, max_size=20))
def test_apportion_shares_the_whole_pot_within_a_penny_of_exact(total: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        total = 0
    shares = apportion(total, np.array(weights))
    assert int(shares.sum()) == total
    if sum(weights):
        exact = np.array(weights) * total / sum(weights)
        assert (np.abs(shares - exact) < 1).all()


def test_largest_remainders_get_the_pennies_and_ties_go_to_the_earlier_member() -> None:
    assert apportion(10, np.array([1, 1, 1])).tolist() == [4, 3, 3]
    assert apportion(100, np.array([1, 2, 3])).tolist() == [17, 33, 50]  # 16.67, 33.33, 50
    assert apportion(1, np.array([0, 5, 5])).tolist() == [0, 1, 0]


def test_equal_shares_cap_at_what_a_member_needs_and_pass_the_rest_on() -> None:
    assert fill(9, np.array([1, 10, 10]), np.array([1, 1, 1])).tolist() == [1, 4, 4]
    assert fill(30, np.array([1, 10, 10]), np.array([1, 1, 1])).tolist() == [1, 10, 10]  # 9 Wh unshared


def test_money_reads_as_pounds_and_pots_round_half_a_penny_up() -> None:
    assert [pounds(p) for p in (0, 5, 123, -5, 123456)] == ["£0.00", "£0.05", "£1.23", "-£0.05", "£1,234.56"]
    assert pot(500, 1000) == 1  # 0.5p rounds up
    assert pot(499, 1000) == 0
