"""The ledger's terms policy gives the same answers on both engines, on its table and on odd spans."""

from __future__ import annotations

from typing import Any

import pytest

from coopfed.node.ledger.terms import TERMS_PATH
from coopfed.node.policy.embedded import EmbeddedEngine
from coopfed.node.policy.opa import OpaEngine

pytestmark = pytest.mark.integration

JAN = 1704067200
CASES: list[tuple[str, Any, bool, str]] = [
    ("a month", {"period_start": JAN, "period_end": JAN + 31 * 86400}, True, "in proportion"),
    ("one half-hour", {"period_start": JAN, "period_end": JAN + 1800}, True, "every consent level"),
    ("off the half hour", {"period_start": JAN + 60, "period_end": JAN + 1800}, False, "on the half hour"),
    ("backwards", {"period_start": JAN + 1800, "period_end": JAN}, False, "must end after"),
    ("too long", {"period_start": JAN, "period_end": JAN + 93 * 86400}, False, "at most 92 days"),
    ("text", {"period_start": "2024-01-01", "period_end": JAN}, False, "whole unix seconds"),
    ("a fraction", {"period_start": JAN + 0.5, "period_end": JAN + 1800}, False, "whole unix seconds"),
    ("beyond 2^53", {"period_start": JAN, "period_end": 1800 * (2**53 + 1)}, False, "whole unix seconds"),
    ("a boolean", {"period_start": True, "period_end": JAN}, False, "whole unix seconds"),
    ("nothing", {}, False, "needs a period start and end"),
    ("not an object", [JAN, JAN + 1800], False, "needs a period start and end"),
]


@pytest.mark.parametrize(("name", "query", "allowed", "reason"), CASES, ids=[c[0] for c in CASES])
def test_both_engines_give_the_same_terms(
    engines: tuple[EmbeddedEngine, OpaEngine], name: str, query: Any, allowed: bool, reason: str
) -> None:
    embedded, opa = (engine.evaluate(TERMS_PATH, query) for engine in engines)
    assert embedded == opa, name
    assert embedded["allowed"] is allowed
    assert any(reason in r for r in embedded["reasons"]), embedded["reasons"]
    assert embedded["flow"] == "internal"
