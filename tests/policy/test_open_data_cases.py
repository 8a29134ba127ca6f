"""The open-data policy gives the same answers on both engines: who contributes, and the terms."""

from __future__ import annotations

from typing import Any

import pytest

from coopfed.node.opendata.publish import CONTRIBUTES, TERMS
from coopfed.node.policy.embedded import EmbeddedEngine
from coopfed.node.policy.opa import OpaEngine

pytestmark = pytest.mark.integration

GREEN = {"level": "green", "persona": "", "choices": {}}
YES = {"allowed": True, "reasons": ["green"]}
NO = {"allowed": False, "reasons": ["amber, not chosen"]}
CASES: list[tuple[str, Any, bool, str]] = [
    ("consented", {"profile": GREEN, "dataset": "demand", "consent": YES}, True, "allows publishing"),
    ("not consented", {"profile": GREEN, "dataset": "demand", "consent": NO}, False, "does not allow"),
    (
        "red, whatever it says",
        {"profile": {"level": "red"}, "dataset": "demand", "consent": YES},
        False,
        "red",
    ),
    ("not published", {"profile": GREEN, "dataset": "gas", "consent": YES}, False, "does not publish"),
    (
        "a decision as text",
        {"profile": GREEN, "dataset": "demand", "consent": "yes"},
        False,
        "does not allow",
    ),
    ("no profile", {"dataset": "demand", "consent": YES}, False, "names no consent profile"),
    ("not an object", ["demand"], False, "names no consent profile"),
]


@pytest.mark.parametrize(("name", "query", "allowed", "reason"), CASES, ids=[c[0] for c in CASES])
def test_both_engines_decide_the_same_contribution(
    engines: tuple[EmbeddedEngine, OpaEngine], name: str, query: Any, allowed: bool, reason: str
) -> None:
    embedded, opa = (engine.evaluate(CONTRIBUTES, query) for engine in engines)
    assert embedded == opa, name
    assert embedded["allowed"] is allowed
    assert any(reason in r for r in embedded["reasons"]), embedded["reasons"]


def test_both_engines_give_the_same_terms(engines: tuple[EmbeddedEngine, OpaEngine]) -> None:
    embedded, opa = (engine.evaluate(TERMS, {}) for engine in engines)
    assert embedded == opa
    assert embedded["licence"]["name"] == "CC-BY-4.0"
    assert embedded["k"] == 10  # the open-data k, above the co-op's 5
    assert embedded["datasets"] == ["demand", "export", "generation"]
