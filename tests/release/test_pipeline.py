"""The one release pipeline: one span rule for the access log, one revocation interface, the
decision-log entry durable before data, and no release from a node that keeps no logs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from coopfed.federation import errors as token_errors
from coopfed.federation.grants import Constraints, Grant, GrantScope, Noise
from coopfed.node.model import HALF_HOUR, ConsentLevel, ConsentSettings
from coopfed.node.release import pipeline
from coopfed.node.runtime import Node, init_node, open_node
from coopfed.node.settings import load_settings
from coopfed.node.storage.governance import GrantKind

POLICIES = Path(__file__).resolve().parents[2] / "policies"
DAY = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp())
HOURS = DAY + np.arange(48, dtype=np.int64) * HALF_HOUR
PURPOSE = "dpv:CommunityEnergyForecasting"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    folder = tmp_path_factory.mktemp("rel")
    config = init_node(folder, node_id="coop-b", name="B", listen="127.0.0.1:0", policies=POLICIES)
    with open_node(load_settings(config, environ={"COOPFED_STORAGE__SYNCHRONOUS": "NORMAL"})) as node:
        green = ConsentSettings(level=ConsentLevel.GREEN)
        mornings_and_afternoons = HOURS[
            (HOURS - DAY < 6 * 3600) | ((HOURS - DAY >= 12 * 3600) & (HOURS - DAY < 18 * 3600))
        ]
        for i in range(5):
            node.store.create_member(f"a{i}", "A", green, admitted_by="test")
            node.store.put_readings(
                f"a{i}", [("demand", mornings_and_afternoons, np.ones(mornings_and_afternoons.size))]
            )
        node.store.create_member(
            "b", "B", green, admitted_by="test"
        )  # alone at 08:00-10:00: a cell under k, between released ones
        lone = HOURS[(HOURS - DAY >= 8 * 3600) & (HOURS - DAY < 10 * 3600)]
        node.store.put_readings("b", [("demand", lone, np.ones(lone.size))])
        yield node


def _release(node: Node, noise: Noise | None = None) -> pipeline.Release:
    ask = pipeline.Ask("coop_to_coop", PURPOSE, ("demand",), (DAY, DAY + 86400), noise=noise)
    to = pipeline.Recipient(GrantKind.FEDERATION, "g-1", "coop-a", "A co-op")
    return node.pipeline.plan(ask, to)


def test_only_members_with_a_reading_in_a_released_cell_are_logged(node: Node) -> None:
    release = node.pipeline.record(_release(node), "coopfed/test/release", {})
    cells = node.pipeline.cells(release, "demand")
    assert cells.periods.size == 24  # the mornings and afternoons; b's hours are withheld
    assert cells.suppressed.size == 4
    assert (
        node.pipeline.log_access(release, [cells]) == 5
    )  # the a's: b is inside the span, in no released cell
    assert all(
        e.release_id == release.release_id
        for i in range(5)
        for e in node.governance.access_for_member(f"a{i}")
    )
    assert all(e.release_id != release.release_id for e in node.governance.access_for_member("b"))


def test_the_decision_is_durable_before_any_cell_and_names_the_release(node: Node) -> None:
    release = node.pipeline.record(_release(node, Noise("laplace", 1.0)), "coopfed/test/release", {"x": 1})
    stored = json.loads(node.governance.decision_entry(release.decision_id))  # in the database already
    assert stored["input"]["x"] == 1
    assert stored["input"]["flow"] == "coop_to_coop"
    assert stored["result"]["min_group_size"] == 5
    assert stored["result"]["noise"] == {"mechanism": "laplace", "epsilon": 1.0}
    assert list(stored["result"]["consenting_profiles"]["demand"].values())  # the consent decisions it used
    assert release.release_id == release.decision_id


class _Revoked:
    def __init__(self) -> None:
        self.revoked: dict[str, str] = {}

    def reason_for(self, jti: str) -> str | None:
        return self.revoked.get(jti)


def _grant(expires_in: int) -> Grant:
    now = int(time.time())
    scope = GrantScope(
        frozenset({"demand"}), DAY, DAY + 86400, PURPOSE, "coop_to_coop", fields=frozenset({"kwh"})
    )
    return Grant("coop-b", "coop-a", ("coop-b",), "g-2", now, now, now + expires_in, scope, Constraints(5))


def test_a_revocation_or_expiry_stops_the_release_through_one_interface() -> None:
    revocations = _Revoked()
    grant = _grant(600)
    pipeline.check_live(grant, revocations)  # still live
    revocations.revoked["g-2"] = "the peer left the federation"
    with pytest.raises(token_errors.Revoked, match="left the federation"):
        pipeline.check_live(grant, revocations)
    with pytest.raises(token_errors.Expired):
        pipeline.check_live(_grant(0), _Revoked())
