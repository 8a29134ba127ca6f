"""Contract: declared homes (optional, replaced whole, erased with the member) and the yearly
privacy spend (all or none), on every backend."""

from __future__ import annotations

import pytest

from coopfed.node.model import ConsentLevel, ConsentSettings
from coopfed.node.storage import Capacity, Home, InvalidData, MemberErased, NotFound, Store


def test_a_home_is_declared_replaced_withdrawn_and_erased(store: Store) -> None:
    store.create_member("a", "A", ConsentSettings())
    store.create_member("b", "B", ConsentSettings())
    assert store.homes() == {}
    store.set_home("a", Home(household_size=2, heating="gas", has_pv=True))
    store.set_home("a", Home(home_type="flat"))  # replaces: nothing of the first is kept
    store.set_home("b", Home(has_battery=False))
    assert store.homes() == {"a": Home(home_type="flat"), "b": Home(has_battery=False)}
    assert store.homes(["b", "nobody"]) == {"b": Home(has_battery=False)}
    store.set_home("b", None)
    assert store.homes(["b"]) == {}
    store.erase_member("a")
    assert store.homes() == {}
    with pytest.raises(MemberErased):
        store.set_home("a", Home(heating="gas"))
    with pytest.raises(NotFound):
        store.set_home("nobody", Home(heating="gas"))


@pytest.mark.parametrize(
    "bad",
    [
        {"household_size": 0}, {"household_size": 13}, {"heating": "coal"}, {"home_type": "castle"},
        {"solar_kw": -1.0}, {"wind_kw": 4000}, {"battery_kwh": float("nan")}, {"solar_kw": True},
    ],
)  # fmt: skip
def test_a_home_out_of_range_is_refused(bad: dict) -> None:
    with pytest.raises(InvalidData):
        Home(**bad)


def test_installed_capacity_is_summed_over_admitted_members_who_declared_it(store: Store) -> None:
    green = ConsentSettings(level=ConsentLevel.GREEN)
    for m, settings in (("a", green), ("b", green), ("c", green), ("d", ConsentSettings())):
        store.create_member(m, m.upper(), settings, admitted_by="test")
    store.create_member("applicant", "X", green)  # not admitted: counts toward nothing
    store.set_home("a", Home(solar_kw=4.5, battery_kwh=10))
    store.set_home("b", Home(solar_kw=3.0, wind_kw=2.5))
    store.set_home("c", Home(heating="gas"))  # declared a home but no capacity
    store.set_home("d", Home(wind_kw=6.0))
    store.set_home("applicant", Home(solar_kw=100.0))
    assert store.homes(["a"]) == {"a": Home(solar_kw=4.5, battery_kwh=10)}
    greens, red = store.get_member("a").profile_id, store.get_member("d").profile_id
    assert store.capacity([greens]) == Capacity(2, 7.5, 2.5)
    assert store.capacity([greens, red]) == Capacity(3, 7.5, 8.5)
    assert store.capacity([]) == Capacity(0, 0.0, 0.0)
    store.erase_member("b")
    assert store.capacity([greens]) == Capacity(1, 4.5, 0.0)


def test_the_privacy_spend_is_charged_all_or_none(store: Store) -> None:
    for m in ("a", "b"):
        store.create_member(m, m.upper(), ConsentSettings())
    assert store.charge_privacy(["a", "b"], 2026, 4.0, 10.0) == []
    assert store.charge_privacy(["a"], 2026, 4.0, 10.0) == []
    assert store.charge_privacy(["a", "b"], 2026, 4.0, 10.0) == ["a"]  # a would reach 12
    assert store.privacy_spent(["a", "b"], 2026) == {"a": 8.0, "b": 4.0}  # b was not charged either
    assert store.charge_privacy(["a"], 2027, 10.0, 10.0) == []  # a new year, a new budget
    assert store.privacy_spent(["a"], 2027) == {"a": 10.0}
