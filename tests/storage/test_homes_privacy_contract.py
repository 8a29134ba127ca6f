"""Contract: declared homes (optional, replaced whole, erased with the member) and the yearly
privacy spend (all or none), on every backend."""

from __future__ import annotations

import pytest

from coopfed.node.model import ConsentSettings
from coopfed.node.storage import Home, InvalidData, MemberErased, NotFound, Store


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
    "bad", [{"household_size": 0}, {"household_size": 13}, {"heating": "coal"}, {"home_type": "castle"}]
)
def test_a_home_out_of_range_is_refused(bad: dict) -> None:
    with pytest.raises(InvalidData):
        Home(**bad)


def test_the_privacy_spend_is_charged_all_or_none(store: Store) -> None:
    for m in ("a", "b"):
        store.create_member(m, m.upper(), ConsentSettings())
    assert store.charge_privacy(["a", "b"], 2026, 4.0, 10.0) == []
    assert store.charge_privacy(["a"], 2026, 4.0, 10.0) == []
    assert store.charge_privacy(["a", "b"], 2026, 4.0, 10.0) == ["a"]  # a would reach 12
    assert store.privacy_spent(["a", "b"], 2026) == {"a": 8.0, "b": 4.0}  # b was not charged either
    assert store.charge_privacy(["a"], 2027, 10.0, 10.0) == []  # a new year, a new budget
    assert store.privacy_spent(["a"], 2027) == {"a": 10.0}
