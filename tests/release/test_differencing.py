"""Two releases whose member sets differ by one person: plain k-anonymous totals give that
person's readings away by subtraction; differentially private ones do not, and the yearly
budget stops a member's data being differenced again and again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from coopfed.node.errors import FailedPrecondition
from coopfed.node.model import ConsentLevel, ConsentSettings
from coopfed.node.release import pipeline
from coopfed.node.runtime import Node, init_node, open_node
from coopfed.node.settings import load_settings
from coopfed.node.storage.governance import GrantKind

from .test_pipeline import DAY, HOURS, POLICIES

TARGET = np.round(np.random.default_rng(7).uniform(0.1, 2.0, HOURS.size), 3)  # the newcomer's day


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    config = init_node(tmp_path, node_id="coop-b", name="B", listen="127.0.0.1:0", policies=POLICIES)
    with open_node(load_settings(config, environ={"COOPFED_STORAGE__SYNCHRONOUS": "NORMAL"})) as node:
        for i in range(12):
            node.store.create_member(
                f"a{i}", "A", ConsentSettings(level=ConsentLevel.GREEN), admitted_by="test"
            )
            node.store.put_readings(f"a{i}", [("demand", HOURS, np.full(HOURS.size, 0.5 + i / 10))])
        yield node


def _publish(node: Node, epsilon: float | None) -> pipeline.Cells:
    ask = pipeline.Ask("open_data", "dpv:PublicBenefit", ("demand",), (DAY, DAY + 86400), epsilon=epsilon)
    release = node.pipeline.plan(ask, pipeline.Recipient(GrantKind.OPEN_DATA, "pub-t", "public", "open data"))
    release = node.pipeline.record(release, "coopfed/test/release", {})
    return node.pipeline.cells(release, "demand")


def _difference(node: Node, epsilon: float | None) -> np.ndarray:
    before = _publish(node, epsilon)
    node.store.create_member("newcomer", "N", ConsentSettings(level=ConsentLevel.GREEN), admitted_by="test")
    node.store.put_readings("newcomer", [("demand", HOURS, TARGET)])
    after = _publish(node, epsilon)
    shared = np.intersect1d(before.periods, after.periods)
    assert shared.size > 0
    assert before.kwh is not None
    assert after.kwh is not None
    return after.kwh[np.isin(after.periods, shared)] - before.kwh[np.isin(before.periods, shared)]


def test_differencing_plain_k_anonymous_releases_reveals_the_newcomer(node: Node) -> None:
    np.testing.assert_allclose(_difference(node, None), TARGET, atol=1e-9)  # every half-hour, exactly


def test_differencing_private_releases_reveals_nothing_useful(node: Node) -> None:
    guess = _difference(node, 1.0)
    error = np.abs(guess - TARGET[: guess.size]).mean()
    assert error > 5 * TARGET.mean()  # the noise swamps one member's half-hour


def test_the_yearly_budget_refuses_the_release_that_would_exceed_it(node: Node) -> None:
    for _ in range(2):
        _publish(node, 5.0)  # the co-op's budget: epsilon 10 a member a year
    with pytest.raises(FailedPrecondition) as refused:
        _publish(node, 0.5)
    assert refused.value.code == "release.budget_spent"
    assert "12 members past their privacy budget" in str(refused.value)
    spent = node.store.privacy_spent(["a0"], datetime.now(UTC).year)
    assert spent == {"a0": pytest.approx(10.0)}  # the refused release charged no one
