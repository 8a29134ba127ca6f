"""The shared table of consent cases, answered by each engine, and the node's decision helper."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from coopfed.node.model import ConsentLevel, ConsentSettings, Flow
from coopfed.node.policy import PolicyEngine, PolicyError, PolicySet, make_engine
from coopfed.node.policy.consent import CONSENT_PATH, decide_consent, parse_decision
from coopfed.node.policy.embedded import EmbeddedEngine
from coopfed.node.policy.opa import OpaEngine
from coopfed.node.policy.sidecar import OpaSidecar

from .cases import CASES, Case


@pytest.fixture(scope="module")
def embedded(policy_set: PolicySet) -> Iterator[EmbeddedEngine]:
    engine = EmbeddedEngine(policy_set)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def opa(opa_server: OpaSidecar, policy_set: PolicySet) -> Iterator[OpaEngine]:
    engine = OpaEngine(opa_server.url, policy_set, push=False, token=opa_server.token)
    yield engine
    engine.close()


def _check(engine: PolicyEngine, case: Case) -> None:
    result = engine.evaluate(CONSENT_PATH, case.input)
    assert result["allowed"] is case.allowed, result
    assert any(case.reason in r for r in result["reasons"]), result["reasons"]
    assert result["reasons"] == sorted(set(result["reasons"]))
    if case.level:
        assert result["profile_level"] == case.level
    assert result["persona"] == case.persona or not case.persona
    if case.allowed:
        assert len(result["reasons"]) == 1


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_embedded_answers_the_table(embedded: EmbeddedEngine, case: Case) -> None:
    _check(embedded, case)


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_opa_answers_the_table(opa: OpaEngine, case: Case) -> None:
    _check(opa, case)


def test_decide_consent_from_model_settings(embedded: EmbeddedEngine) -> None:
    settings = ConsentSettings(
        level=ConsentLevel.AMBER, choices={"generation": frozenset({Flow.OPEN_DATA, Flow.COOP_TO_COOP})}
    )
    profile = settings.policy_input()
    yes = decide_consent(embedded, profile, "generation", Flow.OPEN_DATA, "dpv:PublicBenefit")
    no = decide_consent(embedded, profile, "demand", Flow.OPEN_DATA, "dpv:PublicBenefit")
    assert yes.allowed
    assert not no.allowed
    assert yes.revision == embedded.revision
    assert yes.profile_level == "amber"
    assert no.reasons
    assert all(isinstance(r, str) for r in no.reasons)


def test_every_persona_in_data_is_usable(embedded: EmbeddedEngine, policy_set: PolicySet) -> None:
    personas = policy_set.data["consent"]["personas"]
    assert len(personas) >= 3
    for name, preset in personas.items():
        profile = ConsentSettings(persona=name).policy_input()
        decision = decide_consent(embedded, profile, "demand", "internal", "dpv:ServiceProvision")
        assert decision.allowed, (name, decision.reasons)
        assert (decision.persona, decision.profile_level) == (name, preset["level"])
        assert {"title", "description", "version"} <= preset.keys()


@pytest.mark.parametrize(
    "result",
    [
        None,
        [],
        {"reasons": []},
        {"allowed": "true", "reasons": []},
        {"allowed": 1, "reasons": []},
        {"allowed": True},
        {"allowed": True, "reasons": "fine"},
        {"allowed": True, "reasons": [1]},
    ],
)
def test_malformed_decisions_fail_closed(result: Any) -> None:
    with pytest.raises(PolicyError):
        parse_decision(result, "rev")


def test_make_engine_refuses_unknown_kinds(policy_set: PolicySet) -> None:
    with pytest.raises(PolicyError, match="unknown policy engine"):
        make_engine("rego-cpp", policy_set)
    with pytest.raises(PolicyError, match="opa_url or an opa_binary"):
        make_engine("opa", policy_set)
