"""Properties: no edit of a valid token verifies, and hostile input only ever raises TokenError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fedtools import ISSUER, NODE, NOW, claims, sign_compact
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from coopfed.federation.errors import ScopeError, TokenError
from coopfed.federation.grants import GrantScope, issue_grant, verify_grant
from coopfed.federation.keys import KeyRing, SigningKey, TrustStore, b64url, b64url_decode
from coopfed.federation.tokens import REQUIRED_CLAIMS, TokenUse, verify_token

RING = KeyRing()
RING.rotate()
ATTACKER = SigningKey.generate()
TRUST = TrustStore({ISSUER: RING.jwks()})
SCOPE = GrantScope(
    datasets={"demand"},
    period_start=1_000_000,
    period_end=2_000_000,
    purpose="dpv:ResearchAndDevelopment",
    flow="coop_to_coop",
)
GRANT = issue_grant(RING, issuer=ISSUER, subject="coop-b", audience=NODE, scope=SCOPE)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def refuses(token: Any, **kw: Any) -> TokenError:
    """Verification raises a TokenError (and nothing else)."""
    with pytest.raises(TokenError) as exc_info:
        verify_grant(token, trust=TRUST, audience=NODE, **kw)
    return exc_info.value


def test_the_untouched_grant_verifies() -> None:
    assert verify_grant(GRANT, trust=TRUST, audience=NODE).scope == SCOPE


@PROPS
@given(st.data())
def test_no_character_edit_of_a_grant_verifies(data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(GRANT) - 1))
    action = data.draw(st.sampled_from(["replace", "insert", "delete"]))
    char = data.draw(st.sampled_from(ALPHABET))
    if action == "replace":
        assume(GRANT[position] != char)
        edited = GRANT[:position] + char + GRANT[position + 1 :]
    elif action == "insert":
        edited = GRANT[:position] + char + GRANT[position:]
    else:
        edited = GRANT[:position] + GRANT[position + 1 :]
    refuses(edited)


def _payload() -> dict[str, Any]:
    return json.loads(b64url_decode(GRANT.split(".")[1]))


@PROPS
@given(st.sampled_from([*REQUIRED_CLAIMS, "scope", "constraints", "extra"]), json_values)
def test_no_claim_mutation_verifies_under_the_original_signature(claim: str, value: Any) -> None:
    payload = _payload()
    assume(payload.get(claim, ...) != value)
    payload[claim] = value
    refuses(_with_payload(payload))


def _with_payload(payload: dict[str, Any]) -> str:
    """The grant with its payload re-encoded as PyJWT encodes it, and the original signature."""
    head, _, sig = GRANT.split(".")
    return f"{head}.{b64url(json.dumps(payload, separators=(',', ':')).encode())}.{sig}"


def test_re_encoding_the_untouched_payload_reproduces_the_grant() -> None:
    assert _with_payload(_payload()) == GRANT


@PROPS
@given(st.sampled_from([*REQUIRED_CLAIMS, "scope"]), json_values, st.booleans())
def test_attacker_signed_mutations_never_verify(claim: str, value: Any, victim_kid: bool) -> None:
    """Whatever the claims say, a token signed with an unpinned key is refused."""
    payload = {**_payload(), claim: value}
    kid = RING.signer.kid if victim_kid else ATTACKER.kid
    header = {"alg": "EdDSA", "kid": kid, "typ": TokenUse.GRANT.typ}
    refuses(sign_compact(header, payload, ATTACKER.private_key.sign))


@PROPS
@given(st.dictionaries(st.sampled_from(["alg", "kid", "typ", "jwk", "jku", "crit", "x5u"]), json_values))
def test_a_validly_signed_token_verifies_only_under_the_exact_header(header: dict[str, Any]) -> None:
    expected = {"alg": "EdDSA", "kid": RING.signer.kid, "typ": TokenUse.ACCESS.typ}
    token = sign_compact(header, claims(), RING.signer.private_key.sign)
    if header == expected:
        assert verify_token(token, trust=TRUST, audience=NODE, use=TokenUse.ACCESS, now=NOW)
    else:
        with pytest.raises(TokenError):
            verify_token(token, trust=TRUST, audience=NODE, use=TokenUse.ACCESS, now=NOW)


@PROPS
@given(st.one_of(st.text(max_size=300), st.binary(max_size=50), json_values))
def test_arbitrary_input_only_raises_token_error(junk: Any) -> None:
    refuses(junk)


@PROPS
@given(
    st.dictionaries(st.text(max_size=6), json_values, max_size=6),
    st.dictionaries(st.text(max_size=6), json_values, max_size=6),
)
def test_arbitrary_signed_json_only_raises_token_error(
    header: dict[str, Any], payload: dict[str, Any]
) -> None:
    refuses(
        sign_compact(
            {**header, "alg": "EdDSA", "kid": RING.signer.kid}, payload, RING.signer.private_key.sign
        )
    )


@PROPS
@given(st.integers(0, 3_000_000), st.integers(1, 1_000_000))
def test_scope_admits_exactly_the_periods_inside_it(start: int, length: int) -> None:
    end = start + length
    inside = SCOPE.period_start <= start and end <= SCOPE.period_end
    request = {"datasets": ["demand"], "flow": "coop_to_coop", "purpose": SCOPE.purpose}
    if inside:
        SCOPE.check(period_start=start, period_end=end, **request)
    else:
        with pytest.raises(ScopeError):
            SCOPE.check(period_start=start, period_end=end, **request)


def test_sign_compact_matches_issue() -> None:
    """The forging helper builds tokens the verifier accepts, so refusals above are meaningful."""
    header = {"alg": "EdDSA", "kid": RING.signer.kid, "typ": TokenUse.ACCESS.typ}
    token = sign_compact(header, claims(), RING.signer.private_key.sign)
    assert verify_token(token, trust=TRUST, audience=NODE, use=TokenUse.ACCESS, now=NOW).subject == "member-1"
