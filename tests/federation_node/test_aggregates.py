"""Releases to peers: consent once per profile, k-suppression, noise, scope checks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from coopfed.federation.errors import ScopeError
from coopfed.federation.grants import Constraints, Grant, GrantScope, Noise
from coopfed.node.errors import InvalidArgument
from coopfed.node.federation.aggregates import PeerReleases
from coopfed.node.model import ConsentLevel, ConsentSettings, Flow
from coopfed.node.runtime import Node, init_node, open_node
from coopfed.node.settings import load_settings
from coopfed.node.storage import Capacity, Home

from .conftest import FORECASTING, POLICIES, YEAR_END, YEAR_START, expected_totals, populate

PROFILES = [
    ConsentSettings(level=ConsentLevel.GREEN),
    ConsentSettings(level=ConsentLevel.AMBER, choices={"demand": frozenset({Flow.COOP_TO_COOP})}),
    ConsentSettings(level=ConsentLevel.RED),
    ConsentSettings(persona="community_first", level=ConsentLevel.AMBER),
]


@pytest.fixture(scope="module")
def coop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, dict]]:
    folder = tmp_path_factory.mktemp("agg")
    config = init_node(folder, node_id="coop-b", name="B", listen="127.0.0.1:0", policies=POLICIES)
    with open_node(load_settings(config, environ={"COOPFED_STORAGE__SYNCHRONOUS": "NORMAL"})) as node:
        # 16 members in 4 consent profiles; the first 4 have readings on the last day.
        values = populate(node, [PROFILES[i % 4] for i in range(16)], last_day_members=4)
        yield node, values


def _grant(k: int = 5, noise: Noise | None = None, flow: str = "coop_to_coop", **scope: object) -> Grant:
    args = {
        "datasets": {"demand", "generation"},
        "fields": {"kwh", "member_count"},
        "period_start": YEAR_START,
        "period_end": YEAR_END,
        "purpose": FORECASTING,
        "flow": flow,
        **scope,
    }
    now = int(time.time())
    return Grant(
        "coop-b", "coop-a", ("coop-b",), "g1", now, now, now + 600, GrantScope(**args), Constraints(k, noise)
    )


def _releases(node: Node) -> PeerReleases:
    return PeerReleases(node.federation.state, node.pipeline)


def _members(values: dict, wanted: set[int]) -> list[str]:
    return [m for m in values if int(m[1:]) % 4 in wanted]


def test_consent_is_asked_once_per_profile_not_per_member(coop: tuple[Node, dict]) -> None:
    node, values = coop
    node.consent._cache.clear()
    release = _releases(node).plan(_grant(), (), None)
    assert len(node.consent._cache) == 2 * len(PROFILES)  # two datasets, four profiles, 16 members
    assert release.datasets == ("demand", "generation")
    assert release.profiles_total == 4
    assert release.profiles_included == 3  # red is left out
    demand = _releases(node).series(release, "demand")
    kwh, counts = expected_totals(values, _members(values, {0, 1, 3}), "demand")
    released = counts >= 5
    np.testing.assert_allclose(demand.kwh, kwh[released])
    np.testing.assert_array_equal(demand.member_count, counts[released])
    assert demand.suppressed.size == 48  # last day: 3 consenting members (< k)
    generation = _releases(node).series(release, "generation")  # amber allowed demand only
    np.testing.assert_array_equal(
        generation.member_count, expected_totals(values, _members(values, {0, 3}), "generation")[1][:-48]
    )


def test_the_coops_own_k_is_a_floor_and_a_larger_grant_k_wins(coop: tuple[Node, dict]) -> None:
    node, _ = coop
    assert _releases(node).plan(_grant(k=1), (), None).min_group_size == 5
    strict = _releases(node).plan(_grant(k=13), ("demand",), None)
    assert _releases(node).series(strict, "demand").periods.size == 0  # 12 consenting members at most


def test_fields_not_granted_are_not_released(coop: tuple[Node, dict]) -> None:
    node, _ = coop
    series = _releases(node).series(_releases(node).plan(_grant(fields={"member_count"}), (), None), "demand")
    assert series.kwh is None
    assert series.member_count is not None


def test_noise_is_added_where_the_grant_requires_it(coop: tuple[Node, dict]) -> None:
    node, _ = coop
    exact = _releases(node).series(_releases(node).plan(_grant(), ("demand",), None), "demand")
    releases = _releases(node)
    noisy = releases.series(releases.plan(_grant(noise=Noise("laplace", 1.0)), ("demand",), None), "demand")
    np.testing.assert_array_equal(noisy.member_count, exact.member_count)
    assert (noisy.kwh >= 0).all()
    assert (noisy.kwh != exact.kwh).mean() > 0.9
    gaussian = _grant(noise=Noise("gaussian", 2.0))
    assert (
        _releases(node).series(_releases(node).plan(gaussian, ("demand",), None), "demand").kwh.size
        == exact.kwh.size
    )


def test_declared_capacity_goes_only_with_exact_generation_kwh_of_k_members(coop: tuple[Node, dict]) -> None:
    node, values = coop
    generating = _members(values, {0, 3})  # green and community_first release generation

    def capacity(grant: Grant, datasets: tuple[str, ...] = ()) -> Capacity | None:
        releases = _releases(node)
        return releases.capacity(releases.plan(grant, datasets, None))

    try:
        for m in generating[:4]:
            node.store.set_home(m, Home(solar_kw=3.0))
        node.store.set_home(_members(values, {2})[0], Home(wind_kw=50.0))  # red: never released
        assert capacity(_grant()) is None  # four declared: fewer than k
        node.store.set_home(generating[4], Home(wind_kw=2.0))
        assert capacity(_grant()) == Capacity(5, 12.0, 2.0)
        assert capacity(_grant(k=6)) is None
        assert capacity(_grant(), ("demand",)) is None
        assert capacity(_grant(fields={"member_count"})) is None
        assert capacity(_grant(noise=Noise("laplace", 1.0))) is None  # exact kW would undo the noise
    finally:
        for m in values:
            node.store.set_home(m, None)


def test_requests_beyond_the_grant_are_refused(coop: tuple[Node, dict]) -> None:
    node, _ = coop
    with pytest.raises(ScopeError, match="datasets not granted"):
        _releases(node).plan(_grant(), ("export",), None)
    with pytest.raises(ScopeError, match="grant covers"):
        _releases(node).plan(_grant(), (), (YEAR_START - 1800, YEAR_END))
    with pytest.raises(ScopeError, match="grant is for flow third_party"):
        _releases(node).plan(_grant(flow="third_party"), (), None)
    with pytest.raises(InvalidArgument, match="half-hour aligned"):
        _releases(node).plan(_grant(), (), (YEAR_START + 60, YEAR_END))
    with pytest.raises(InvalidArgument, match="each dataset once"):
        _releases(node).plan(_grant(), ("demand", "demand"), None)


def test_a_series_split_into_chunks_keeps_every_cell(coop: tuple[Node, dict], tmp_path: Path) -> None:
    node, _ = coop
    whole = _releases(node).series(_releases(node).plan(_grant(), ("demand",), None), "demand")
    parts = list(whole.chunks(1000))
    assert len(parts) == -(-whole.periods.size // 1000)
    np.testing.assert_array_equal(np.concatenate([p.periods for p in parts]), whole.periods)
    np.testing.assert_array_equal(np.concatenate([p.suppressed for p in parts]), whole.suppressed)
    np.testing.assert_array_equal(np.concatenate([p.kwh for p in parts]), whole.kwh)
