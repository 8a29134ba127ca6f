"""Grants: issue and verify, scope checks, and malformed scopes under a valid signature."""

from __future__ import annotations

from typing import Any

import pytest
from fedtools import ISSUER, NODE, NOW, PEER

from coopfed.federation.errors import ScopeError, TokenError
from coopfed.federation.grants import (
    Constraints,
    GrantScope,
    Granularity,
    Noise,
    issue_grant,
    verify_grant,
)
from coopfed.federation.keys import KeyRing, TrustStore
from coopfed.federation.tokens import TokenUse, issue_token

JAN, FEB, MAR = 1_704_067_200, 1_706_745_600, 1_709_251_200  # 2024-01-01, -02-01, -03-01


def grant(ring: KeyRing, scope: GrantScope, **kw: Any) -> str:
    args = {"issuer": ISSUER, "subject": "university-x", "audience": NODE, "scope": scope}
    return issue_grant(ring, **{**args, **kw})


def request(**overrides: Any) -> dict[str, Any]:
    """A request well inside the `scope` fixture."""
    base = {
        "datasets": ["demand"],
        "fields": ["kwh"],
        "period_start": FEB,
        "period_end": MAR,
        "granularity": "aggregate",
        "flow": "third_party",
        "purpose": "dpv:ResearchAndDevelopment",
    }
    return {**base, **overrides}


def test_grant_round_trips(ring: KeyRing, trust: TrustStore, scope: GrantScope) -> None:
    constraints = Constraints(min_group_size=10, noise=Noise("laplace", 0.5))
    token = grant(ring, scope, constraints=constraints, ttl=3600, jti="g-1")
    verified = verify_grant(token, trust=trust, audience=NODE, issuer=ISSUER)
    assert verified.scope == scope
    assert verified.constraints == constraints
    assert (verified.issuer, verified.subject, verified.jti) == (ISSUER, "university-x", "g-1")
    assert verified.expires_at - verified.issued_at == 3600


def test_peer_co_op_grant_verifies_against_its_pinned_keys(
    peer_ring: KeyRing, trust: TrustStore, scope: GrantScope
) -> None:
    token = grant(peer_ring, scope, issuer=PEER, subject=NODE, audience=PEER)
    assert verify_grant(token, trust=trust, audience=PEER, issuer=PEER).subject == NODE


def test_member_access_token_is_not_a_grant(ring: KeyRing, trust: TrustStore) -> None:
    token = issue_token(ring, issuer=ISSUER, subject="m", audience=NODE, use=TokenUse.ACCESS, ttl=60)
    with pytest.raises(TokenError) as exc_info:
        verify_grant(token, trust=trust, audience=NODE)
    assert exc_info.value.code == "wrong_type"


def test_grant_for_another_node_is_refused(ring: KeyRing, trust: TrustStore, scope: GrantScope) -> None:
    with pytest.raises(TokenError) as exc_info:
        verify_grant(grant(ring, scope, audience="coop-z"), trust=trust, audience=NODE)
    assert exc_info.value.code == "bad_audience"


def test_grant_valid_from_a_later_date(ring: KeyRing, trust: TrustStore, scope: GrantScope) -> None:
    token = grant(ring, scope, now=NOW, not_before=NOW + 86_400)
    with pytest.raises(TokenError) as exc_info:
        verify_grant(token, trust=trust, audience=NODE, now=NOW)
    assert exc_info.value.code == "not_yet_valid"
    assert verify_grant(token, trust=trust, audience=NODE, now=NOW + 86_400).jti


@pytest.mark.parametrize(
    ("bad_claims", "why"),
    [
        ({"scope": "demand"}, "string scope"),
        ({"scope": {"datasets": ["demand"]}}, "incomplete scope"),
        ({"constraints": {"min_group_size": 0}}, "k below 1"),
        ({"constraints": {"min_group_size": 5, "noise": {"mechanism": "none", "epsilon": 1}}}, "mechanism"),
        ({"constraints": {"min_group_size": 5, "noise": {"mechanism": "laplace", "epsilon": -1}}}, "eps"),
        ({"constraints": None}, "no constraints"),
    ],
)
def test_validly_signed_grant_with_malformed_scope_is_refused(
    ring: KeyRing, trust: TrustStore, scope: GrantScope, bad_claims: dict[str, Any], why: str
) -> None:
    body = {"scope": scope.to_claim(), "constraints": Constraints().to_claim(), **bad_claims}
    token = issue_token(
        ring, issuer=ISSUER, subject="u", audience=NODE, use=TokenUse.GRANT, ttl=60, claims=body
    )
    with pytest.raises(TokenError) as exc_info:
        verify_grant(token, trust=trust, audience=NODE)
    assert exc_info.value.code == "malformed", why


def test_request_inside_the_scope_passes(scope: GrantScope) -> None:
    scope.check(**request())
    scope.check(**request(datasets=["demand", "generation"], fields=[]))
    scope.check(**request(period_start=scope.period_start, period_end=scope.period_end))


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"datasets": ["demand", "export"]}, "dataset_not_granted"),
        ({"fields": ["kwh", "member_id"]}, "field_not_granted"),
        ({"period_start": JAN - 1800}, "period_outside"),
        ({"period_end": 1_735_689_600 + 1}, "period_outside"),
        ({"period_start": 1_735_689_600, "period_end": 1_735_689_600 + 1800}, "period_outside"),
        ({"granularity": "individual"}, "granularity_too_fine"),
        ({"flow": "open_data"}, "wrong_flow"),
        ({"purpose": "dpv:Marketing"}, "wrong_purpose"),
    ],
)
def test_request_beyond_the_scope_is_refused(scope: GrantScope, overrides: dict[str, Any], code: str) -> None:
    with pytest.raises(ScopeError) as exc_info:
        scope.check(**request(**overrides))
    assert exc_info.value.code == code


def test_individual_grant_allows_aggregate_requests(scope: GrantScope) -> None:
    fine = GrantScope(**{**scope.to_claim(), "granularity": Granularity.INDIVIDUAL})
    fine.check(**request(granularity="individual"))
    fine.check(**request(granularity="aggregate"))


def test_grant_check_is_the_scope_check(ring: KeyRing, trust: TrustStore, scope: GrantScope) -> None:
    verified = verify_grant(grant(ring, scope), trust=trust, audience=NODE)
    verified.check(**request())
    with pytest.raises(ScopeError):
        verified.check(**request(datasets=["export"]))


@pytest.mark.parametrize(
    "overrides",
    [
        {"period_start": MAR, "period_end": FEB},
        {"period_start": FEB, "period_end": FEB},
        {"datasets": "demand"},  # a string is not a set of dataset names
        {"granularity": "hourly"},
    ],
)
def test_malformed_request_is_a_value_error(scope: GrantScope, overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the node maps it to INVALID_ARGUMENT
        scope.check(**request(**overrides))


@pytest.mark.parametrize(
    "overrides",
    [
        {"datasets": []},
        {"datasets": [""]},
        {"period_start": MAR, "period_end": FEB},
        {"period_start": -1},
        {"period_start": True},
        {"period_end": 1.5e9},
        {"purpose": ""},
        {"flow": None},
        {"granularity": "hourly"},
    ],
)
def test_scope_itself_is_validated(scope: GrantScope, overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        GrantScope(**{**scope.to_claim(), **overrides})


def test_constraints_are_validated() -> None:
    for bad in ({"min_group_size": 0}, {"min_group_size": 2.5}, {"min_group_size": True}):
        with pytest.raises(ValueError):  # noqa: PT011
            Constraints(**bad)
    for eps in (0, float("nan"), float("inf"), "1"):
        with pytest.raises(ValueError):  # noqa: PT011
            Noise("laplace", eps)  # type: ignore[arg-type]
