"""`coopfed member home` and `member benchmark` against a real node over gRPC, and the home in
export and erasure."""

from __future__ import annotations

import json

import pytest

from coopfed.node.model import ConsentLevel
from tests.node.conftest import node  # noqa: F401  (the fixture, used by name)
from tests.node.test_cli_member import Cli

from .test_benchmark import SIMILAR, _join


@pytest.fixture
def member(node, tmp_path, capsys) -> Cli:  # noqa: F811
    run = Cli(capsys, tmp_path / "member.json")
    assert "registered as m-" in run("register", "--node", node[1], "--name", "Ada")
    _admit(node[0], tmp_path / "member.json")
    run("set-consent", "--level", "green")
    return run


def _admit(store_node, credentials) -> None:
    """The board admits the member who saved `credentials`: applicants compare with no one."""
    store_node.store.admit_member(json.loads(credentials.read_text())["subject"], by="board")


def test_a_member_declares_their_home_and_sees_where_they_stand(node, member, tmp_path) -> None:  # noqa: F811
    assert member.json("home") == {k: "not declared" for k in member.json("home")}
    shown = member.json(
        "home", "--people", "3", "--heating", "heat_pump", "--home-type", "terraced", "--no-pv"
    )
    assert shown == {
        "household_size": 3, "heating": "heat_pump", "has_pv": False, "has_battery": "not declared",
        "home_type": "terraced", "solar_kw": "not declared", "wind_kw": "not declared",
        "battery_kwh": "not declared",
    }  # fmt: skip
    assert member.json("home", "--solar-kw", "4.5", "--battery-kwh", "9.6")["solar_kw"] == 4.5
    assert "solar panels, kW peak" in member("home")
    got = member.json("home", "--pv")  # only what is given changes
    assert (got["has_pv"], got["solar_kw"], got["battery_kwh"]) == (True, 4.5, 9.6)
    assert set(member.json("home", "--clear").values()) == {"not declared"}
    member("home", "--people", "3", "--heating", "heat_pump", "--home-type", "terraced")
    code, out = member.code("benchmark")
    assert code == 1
    assert "holds no readings yet" in out
    assert "Traceback" not in out
    csv = tmp_path / "week.csv"
    csv.write_text(
        "dataset,period_start,kwh\n"
        + "".join(
            f"demand,2026-01-0{5 + d}T{h:02}:00,{1.3 if 17 <= h < 22 else 0.2}\n"
            for d in range(3)
            for h in range(24)
        )
    )
    member("upload", str(csv))
    code, out = member.code("benchmark")
    assert code == 1
    assert "too few similar homes" in out
    for i in range(6):
        _join(node[0], f"g{i}", ConsentLevel.GREEN, SIMILAR, 0.5 + i / 10)
    got = member.json("benchmark")
    assert got["similar_homes"] == 6
    assert got["season"] == "winter"
    evening = next(s for s in got["by_time_of_day"] if s["label"].startswith("evening"))
    assert evening["higher_than_percent"] == 100
    assert evening["summary"] == "Your evening use is higher than 100% of 6 similar homes."
    text = member("benchmark")
    assert (
        "compared with 6 similar homes (heating: heat_pump, home type: terraced, household size: 3-4)" in text
    )
    assert "evening (17:00-22:00): Your evening use is higher than 100%" in text
    assert "FLOW_" not in text
    assert "Traceback" not in text
    peer = Cli(member.capsys, tmp_path / "peer.json")  # a peer looks twice: the member's data is counted
    peer("register", "--node", node[1], "--name", "Bea")
    _admit(node[0], tmp_path / "peer.json")
    peer("set-consent", "--level", "green")
    peer("home", "--people", "4", "--heating", "heat_pump", "--home-type", "terraced")
    peer("upload", str(csv))
    peer("benchmark")
    peer("benchmark")
    [summary] = [r for r in member.json("access") if r["flow"] == "member_to_member"]
    assert summary["comparisons"] == 2
    assert summary["purpose"].startswith("your data was part of 2 comparisons in ")
    assert summary["organisation"] == "members of the co-op (not named)"
    assert "Bea" not in member("access")
    export = json.loads(member("export"))
    assert export[0]["profile"]["home"]["heating"] == "heat_pump"


def test_a_bad_declaration_is_refused_and_changes_nothing(node, member) -> None:  # noqa: F811
    member("home", "--heating", "gas")
    code, out = member.code("home", "--people", "40")
    assert code == 1
    assert "household size" in out
    code, out = member.code("home", "--wind-kw", "-2")
    assert code == 1
    assert "wind turbine, kW peak: a number from 0 to 1000" in out
    assert "Traceback" not in out
    with pytest.raises(SystemExit) as usage:  # not a number: argparse's usage error
        member.code("home", "--solar-kw", "many")
    assert usage.value.code == 2
    assert member.json("home")["heating"] == "gas"


def test_erasure_takes_the_home_with_it(node, member) -> None:  # noqa: F811
    member("home", "--heating", "gas")
    member_id = json.loads(member.creds.read_text())["subject"]
    member("erase", "--yes")
    assert node[0].store.homes([member_id]) == {}
