"""The repository's policies pass what the board runs on every change: `coopfed policy check` and `test`."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from coopfed.node.cli import main
from coopfed.node.policy.embedded import EmbeddedEngine
from coopfed.node.policy.opa import OpaEngine
from coopfed.node.policy.regotest import find_tool

pytestmark = pytest.mark.integration

GRANT = "coopfed/federation/grant/decision"
_START = 1704067200  # 2024-01-01T00:00:00Z


@pytest.fixture
def opa_env(opa_binary: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COOPFED_OPA", opa_binary)
    return opa_binary


def _regal(policy_dir: Path) -> str | None:
    """Regal as `coopfed policy check` finds it, or the Makefile's copy beside the policies."""
    beside = policy_dir.parent / ".tools" / "bin" / "regal"
    return find_tool("regal") or (str(beside) if os.access(beside, os.X_OK) else None)


def test_repo_policies_pass_policy_check(
    policy_dir: Path, tmp_path: Path, opa_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    regal = _regal(policy_dir)
    chosen = ["--regal", regal, "--require-regal"] if regal else ["--regal", str(tmp_path / "no-regal")]
    code = main(["policy", "check", "--policies", str(policy_dir), *chosen])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "ok opa check --strict" in out
    assert "ok opa fmt --diff" in out
    if regal is None:
        pytest.skip("Regal is not installed (.tools/bin/regal): `make install` builds it, as CI does")
    assert "ok regal lint" in out


def test_repo_policies_pass_policy_test(
    policy_dir: Path, opa_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """OPA's suites pass with coverage, and every case table gives the same answers on both engines."""
    code = main(["policy", "test", "--policies", str(policy_dir)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "engines differ" not in out
    assert re.search(r"OPA: (\d+) of \1 Rego tests pass", out), out
    replayed = re.search(r"case tables: (\d+) inputs replayed through both engines", out)
    assert replayed, out
    assert int(replayed.group(1)) >= 100  # every package's table, not an empty run


def _grant_question(**request: Any) -> dict[str, Any]:
    peer = {
        "coop_id": "coop-b.example",
        "name": "Bee Co-op",
        "aims": ["dpv:CommunityEnergyForecasting", "dpv:ServiceOptimisation", "dpv:PublicBenefit"],
        "governance": {
            "legal_form": "cooperative",
            "decision_making": "one_member_one_vote",
            "consent_model": "traffic_light",
            "min_group_size": 5,
        },
    }
    asked = {
        "datasets": ["demand"],
        "fields": [],
        "granularity": "aggregate",
        "flow": "coop_to_coop",
        "purpose": "dpv:CommunityEnergyForecasting",
        "period_start": _START,
        "period_end": _START + 86400 * 366,
        "min_group_size": 0,
    }
    return {"peer": peer, "request": asked | request}


@pytest.mark.parametrize(("asked", "granted"), [(0, 5), (4, 5), (9, 9), (12, 12), (100, 100)])
def test_a_peer_gets_the_largest_k_on_both_engines(
    engines: tuple[EmbeddedEngine, OpaEngine], asked: int, granted: int
) -> None:
    """A peer may ask for more privacy than the co-op's k, never less; 12 is not 'smaller' than 5."""
    for engine in engines:
        decision = engine.evaluate(GRANT, _grant_question(min_group_size=asked))
        assert decision["allowed"] is True, decision
        assert decision["constraints"]["min_group_size"] == granted


@pytest.mark.parametrize(
    ("request_change", "reason"),
    [
        ({"period_end": _START + 86400 * 732}, "The period is longer than the 731 days one grant may cover."),
        ({"period_end": _START + 86400 * 366 + 60}, "half-hour aligned"),
        ({"min_group_size": 7.5}, "minimum group size must be a whole number"),
        ({"period_end": 1800 * (2**53 + 1)}, "end before the year 10000"),
    ],
)
def test_a_refused_grant_gives_one_reason_on_both_engines(
    engines: tuple[EmbeddedEngine, OpaEngine], request_change: dict[str, Any], reason: str
) -> None:
    answers = [engine.evaluate(GRANT, _grant_question(**request_change)) for engine in engines]
    assert answers[0] == answers[1]
    assert answers[0]["allowed"] is False
    [only] = answers[0]["reasons"]
    assert reason in only
