"""The federation policy through both engines: same answers, reasons always, and fail-closed parsing."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coopfed.node.federation.decide import (
    ALIGNMENT_PATH,
    GRANT_PATH,
    GrantAsk,
    decide_alignment,
    decide_grant,
)
from coopfed.node.federation.manifest import Manifest
from coopfed.node.policy import PolicyError, PolicySet, make_policy_set
from coopfed.node.policy.embedded import EmbeddedEngine
from coopfed.node.policy.opa import OpaEngine

from .conftest import FORECASTING, YEAR_END, YEAR_START, sample_manifest

AIMS = [
    "dpv:ServiceProvision",
    "dpv:ServiceOptimisation",
    "dpv:CommunityEnergyForecasting",
    "dpv:CommunityEnergyBenchmarking",
    "dpv:ResearchAndDevelopment",
    "dpv:PublicBenefit",
    "dpv:Marketing",
    "dpv:SellDataToThirdParties",
    "x:Unknown",
]
PROHIBITED = {"dpv:Marketing", "dpv:PersonalisedAdvertising", "dpv:SellDataToThirdParties"}
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=5,
)
_governance = st.fixed_dictionaries(
    {
        "legal_form": st.sampled_from(["cooperative", "community_benefit_society", "company"]),
        "decision_making": st.sampled_from(["one_member_one_vote", "one_share_one_vote"]),
        "consent_model": st.sampled_from(["traffic_light", "opt_out"]),
        "min_group_size": st.integers(0, 12),
        "policy_review": st.just("technical_board"),
    }
)
_peer = st.fixed_dictionaries(
    {
        "coop_id": st.just("coop-b"),
        "name": st.just("Bee Co-op"),
        "aims": st.lists(st.sampled_from(AIMS), unique=True, max_size=6),
        "governance": _governance | _json,
        "policy_revision": st.just("2025.1"),
        "policy_hash": st.just("ab" * 32),
        "datasets": st.just(["demand", "generation", "export"]),
    }
)
_request = st.fixed_dictionaries(
    {
        "datasets": st.lists(st.sampled_from(["demand", "generation", "export", "gas"]), max_size=4),
        "fields": st.lists(st.sampled_from(["kwh", "member_count", "member_ref"]), unique=True, max_size=2),
        "granularity": st.sampled_from(["aggregate", "individual"]),
        "flow": st.sampled_from(["coop_to_coop", "third_party"]),
        "purpose": st.sampled_from([*AIMS, 7]),
        "period_start": st.sampled_from([YEAR_START, YEAR_START + 60]),
        "period_end": st.sampled_from([YEAR_END, YEAR_START, YEAR_START + 800 * 86_400]),
        "min_group_size": st.integers(-1, 20),
    }
)
_SETTINGS = settings(
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.integration
@_SETTINGS
@given(peer=_peer | _json)
def test_engines_agree_on_alignment(engines: tuple[EmbeddedEngine, OpaEngine], peer: Any) -> None:
    embedded, opa = engines
    ours = embedded.evaluate(ALIGNMENT_PATH, {"peer": peer})
    assert ours == opa.evaluate(ALIGNMENT_PATH, {"peer": peer})
    assert ours["reasons"], "every decision carries a reason"
    if ours["aligned"]:
        assert FORECASTING in peer["aims"]
        assert not PROHIBITED & set(peer["aims"])
        assert peer["governance"]["legal_form"] != "company"
        assert peer["governance"]["min_group_size"] >= 5
    else:
        assert ours["offer"]["datasets"] == []


@pytest.mark.integration
@_SETTINGS
@given(peer=_peer, request=_request | _json)
def test_engines_agree_on_grants(engines: tuple[EmbeddedEngine, OpaEngine], peer: Any, request: Any) -> None:
    embedded, opa = engines
    question = {"peer": peer, "request": request}
    ours = embedded.evaluate(GRANT_PATH, question)
    assert ours == opa.evaluate(GRANT_PATH, question)
    assert ours["reasons"]
    if not ours["allowed"]:
        assert ours["scope"] == {}
        return
    scope = ours["scope"]
    assert (scope["flow"], scope["granularity"]) == ("coop_to_coop", "aggregate")
    assert set(scope["datasets"]) == set(request["datasets"]) <= {"demand", "generation", "export"}
    assert scope["purpose"] in set(peer["aims"]) & set(AIMS) - PROHIBITED
    assert scope["period_end"] - scope["period_start"] <= 731 * 86_400
    assert ours["constraints"]["min_group_size"] >= max(5, request["min_group_size"])


def _ask(**changes: Any) -> GrantAsk:
    base = GrantAsk(("demand",), (), "aggregate", "coop_to_coop", FORECASTING, YEAR_START, YEAR_END)
    return GrantAsk(**{**base.__dict__, **changes})


def _tampered(policy_set: PolicySet, source: str, target: str) -> EmbeddedEngine:
    """The policy set with one module replaced: a policy that answers in the wrong shape."""
    modules = {**policy_set.modules, target: source}
    return EmbeddedEngine(make_policy_set(modules, copy.deepcopy(policy_set.data)))


def test_decisions_parse_into_scope_and_reasons(policy_set: PolicySet) -> None:
    engine = EmbeddedEngine(policy_set)
    peer: Manifest = sample_manifest("coop-b")
    alignment = decide_alignment(engine, peer)
    assert alignment.aligned
    assert FORECASTING in alignment.offer["purposes"]
    decision = decide_grant(engine, peer, _ask(min_group_size=8))
    assert decision.allowed
    assert decision.scope.datasets == {"demand"}
    assert decision.scope.fields == {"kwh", "member_count"}
    assert decision.constraints.min_group_size == 8
    assert decision.ttl_seconds == 30 * 86_400
    refused = decide_grant(engine, peer, _ask(granularity="individual"))
    assert not refused.allowed
    assert refused.scope is None
    assert refused.reasons == ("Peers are granted only aggregate data.",)


GRANT_MODULE = "federation/grant.rego"
WIDER = """package coopfed.federation.grant
decision := {"allowed": true, "reasons": ["ok"], "constraints": {"min_group_size": 5},
  "ttl_seconds": 60, "scope": object.union(input.request, {"datasets": ["demand", "export"], "fields": []})}
"""
NO_SCOPE = """package coopfed.federation.grant
decision := {"allowed": true, "reasons": ["ok"], "ttl_seconds": 60}
"""
STRING_ALLOWED = """package coopfed.federation.grant
decision := {"allowed": "yes", "reasons": ["ok"]}
"""
FOREVER = """package coopfed.federation.grant
decision := {"allowed": true, "reasons": ["ok"], "constraints": {"min_group_size": 5},
  "ttl_seconds": 0, "scope": object.union(input.request, {"fields": []})}
"""


@pytest.mark.parametrize("source", [WIDER, NO_SCOPE, STRING_ALLOWED, FOREVER])
def test_a_malformed_or_widening_answer_is_an_error_never_a_grant(policy_set: PolicySet, source: str) -> None:
    engine = _tampered(policy_set, source, GRANT_MODULE)
    with pytest.raises(PolicyError):
        decide_grant(engine, sample_manifest("coop-b"), _ask())
