"""Member benchmarking (flow 2): consent decides who is a peer, k hides small groups, the
percentiles are right, and peers' access logs count the comparison without naming the viewer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from coopfed.node.errors import FailedPrecondition
from coopfed.node.model import HALF_HOUR, ConsentLevel, ConsentSettings
from coopfed.node.release.benchmark import PATH, Report
from coopfed.node.runtime import Node, init_node, open_node
from coopfed.node.services import benchmarks_of
from coopfed.node.settings import load_settings
from coopfed.node.storage import Home

POLICIES = Path(__file__).resolve().parents[2] / "policies"
START = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp())  # a week of winter, in GMT
WEEK = START + np.arange(7 * 48, dtype=np.int64) * HALF_HOUR
EVENING = ((WEEK - START) // HALF_HOUR % 48 >= 34) & ((WEEK - START) // HALF_HOUR % 48 < 44)  # 17:00-22:00
SIMILAR = Home(household_size=3, heating="heat_pump", home_type="terraced")


def benchmark(node: Node, member: str, epsilon: float | None = None) -> Report:
    return benchmarks_of(node).compare(member, epsilon)


def _join(node: Node, member: str, level: ConsentLevel, home: Home | None, evening: float) -> None:
    node.store.create_member(member, member.upper(), ConsentSettings(level=level), admitted_by="test")
    node.store.set_home(member, home)
    kwh = np.where(EVENING, evening, 0.2)
    node.store.put_readings(member, [("demand", WEEK, kwh)])


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    folder = tmp_path_factory.mktemp("bench")
    config = init_node(folder, node_id="coop-b", name="B", listen="127.0.0.1:0", policies=POLICIES)
    with open_node(load_settings(config, environ={"COOPFED_STORAGE__SYNCHRONOUS": "NORMAL"})) as node:
        for i in range(10):  # similar, consenting; evening use 0.5 .. 1.4
            _join(node, f"g{i}", ConsentLevel.GREEN, SIMILAR, 0.5 + i / 10)
        for i in range(3):  # similar, but their consent keeps them out, whatever their use
            _join(node, f"r{i}", ConsentLevel.RED, SIMILAR, 9.0)
        _join(node, "flat", ConsentLevel.GREEN, Home(heating="heat_pump", home_type="flat"), 1.0)
        _join(
            node, "gas", ConsentLevel.GREEN, Home(household_size=3, heating="gas", home_type="terraced"), 1.0
        )
        yield node


def test_peers_are_similar_consenting_homes_and_percentiles_are_exact(node: Node) -> None:
    report = benchmark(node, "g7")  # evening 1.2: above g0..g6 (7 of 9 peers)
    assert report.season == "winter"
    assert report.peers == 9  # the other green similar homes; red ones and other homes left out
    assert report.similar_by == {"heating": "heat_pump", "home_type": "terraced", "household_size": "3-4"}
    evening = next(b for b in report.bands if b.label == "evening")
    assert (evening.kwh, evening.higher_than) == (1.2, 78)  # 7 of 9
    night = next(b for b in report.bands if b.label == "night")
    assert night.higher_than == 0  # everyone's night is the same
    [january] = report.months
    assert january.label == "January 2026"
    assert january.higher_than == 78
    assert report.peak == ("17:00", "19:00")  # everyone's evening: the co-op's busiest time
    assert "17:00-19:00" in report.suggestion
    assert "after 19:00" in report.suggestion


def test_a_group_smaller_than_k_is_never_shown(node: Node) -> None:
    with pytest.raises(FailedPrecondition) as refused:
        benchmark(node, "flat")  # no other heat-pump flat
    assert refused.value.code == "benchmark.group_too_small"
    assert "at least 5" in str(refused.value)


def test_peers_see_the_comparison_counted_never_who_looked(node: Node) -> None:
    before = benchmark(node, "g3").comparisons_this_month
    report = benchmark(node, "g9")
    entries = node.governance.access_for_member("g3")
    mine = [e for e in entries if e.release_id == report.decision_id]
    assert len(mine) == 1
    assert (mine[0].flow, mine[0].organisation_id, mine[0].organisation_name) == ("member_to_member", "", "")
    assert "g9" not in json.dumps([vars(e) for e in mine], default=str)
    assert benchmark(node, "g3").comparisons_this_month == before + 1  # g9's look; g3's own do not count
    assert all(e.release_id != report.decision_id for e in node.governance.access_for_member("g9"))
    assert all(e.flow != "member_to_member" for e in node.governance.access_for_member("r0"))
    logged = json.loads(node.governance.decision_entry(report.decision_id))
    assert logged["path"] == PATH
    assert logged["result"]["min_group_size"] == 5


def test_a_private_comparison_is_charged_to_every_consenting_member_and_refused_past_the_budget(
    node: Node,
) -> None:
    year = datetime.now(UTC).year
    before = node.store.privacy_spent(["g0", "g9", "r0"], year)
    try:
        outcome: object = benchmark(node, "g7", epsilon=2.0)
    except FailedPrecondition as refused:  # the noisy count of peers fell under k: still charged
        outcome = refused.code
    if isinstance(outcome, str):
        assert outcome == "benchmark.group_too_small"
    else:
        assert outcome.epsilon == 2.0
        assert all(0 <= b.higher_than <= 100 for b in outcome.bands)
    spent = node.store.privacy_spent(["g0", "g9", "r0"], year)
    assert spent["g0"] == pytest.approx(before["g0"] + 2.0)
    assert spent["g9"] == pytest.approx(before["g9"] + 2.0)  # the viewer consents too: a peer of others
    assert spent["r0"] == before["r0"]  # red: never part of a comparison
    with pytest.raises(FailedPrecondition) as over:
        benchmark(node, "g7", epsilon=9.0)
    assert over.value.code == "release.budget_spent"
    assert node.store.privacy_spent(["g0"], year)["g0"] == pytest.approx(spent["g0"])  # all or nothing


def test_private_counts_are_noisy_whole_and_bounded() -> None:
    from coopfed.node.release.benchmark import private_counts

    draws = [private_counts([3, 9], 9, 1.0) for _ in range(300)]
    assert all(0 <= b <= n for below, n in draws for b in below)
    error = np.mean([abs(n - 9) for _, n in draws])
    assert 1.0 < error < 6.0  # Laplace with scale 3 (three counts, epsilon 1): mean error 3
    assert all(private_counts([3, 9], 9, 1000.0) == ([3, 9], 9) for _ in range(20))
