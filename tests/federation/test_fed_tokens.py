"""Token issue and verification, mostly against hostile tokens."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedtools import ISSUER, NODE, NOW, PEER, Forge, claims, refused

from coopfed.federation.errors import TokenError
from coopfed.federation.keys import KeyRing, SigningKey, TrustStore, b64url, b64url_decode
from coopfed.federation.revocation import RevocationList
from coopfed.federation.tokens import REQUIRED_CLAIMS, TokenUse, issue_token, new_jti, verify_token


def verify(token: str, trust: TrustStore, **kw: Any):
    kw.setdefault("now", NOW)  # the suite's clock: tokens are issued relative to NOW
    kw.setdefault("audience", NODE)
    kw.setdefault("use", TokenUse.ACCESS)
    return verify_token(token, trust=trust, **kw)


def check_refused(token: str, trust: TrustStore, code: str, **kw: Any) -> None:
    with pytest.raises(TokenError) as exc_info:
        verify(token, trust, **kw)
    refused(exc_info, token, code)


def access(ring: KeyRing, **kw: Any) -> str:
    args = {
        "issuer": ISSUER,
        "subject": "member-1",
        "audience": NODE,
        "use": TokenUse.ACCESS,
        "ttl": 600,
        "now": NOW,
    }
    return issue_token(ring, **{**args, **kw})


def test_issued_token_verifies_with_its_claims(ring: KeyRing, trust: TrustStore) -> None:
    token = access(ring, claims={"role": "member"}, jti="abc")
    verified = verify(token, trust)
    assert (verified.issuer, verified.subject, verified.audience) == (ISSUER, "member-1", (NODE,))
    assert verified.jti == "abc"
    assert verified.kid == ring.signer.kid
    assert verified.expires_at - verified.issued_at == 600
    assert verified.claims["role"] == "member"
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "kid": ring.signer.kid, "typ": "coopfed-access+jwt"}


def test_issued_token_is_a_standard_jwt(ring: KeyRing) -> None:
    """Any conforming EdDSA verifier (here PyJWT's own) accepts what we issue."""
    token = access(ring, now=int(time.time()))  # PyJWT checks against the real clock
    decoded = jwt.decode(token, ring.signer.public_key, algorithms=["EdDSA"], audience=NODE)
    assert decoded["sub"] == "member-1"


def test_issue_refuses_overriding_registered_claims(ring: KeyRing) -> None:
    with pytest.raises(ValueError, match="registered"):
        access(ring, claims={"aud": "elsewhere"})


def test_expired_token_is_refused_beyond_leeway(ring: KeyRing, trust: TrustStore) -> None:
    token = access(ring, now=NOW - 1000, ttl=600)  # expired 400 s ago
    check_refused(token, trust, "expired")
    assert verify(token, trust, leeway=500).subject == "member-1"


def test_token_is_valid_until_exp_exactly(ring: KeyRing, trust: TrustStore) -> None:
    token = access(ring, now=NOW, ttl=600)
    assert verify(token, trust, now=NOW + 599, leeway=0)
    check_refused(token, trust, "expired", now=NOW + 600, leeway=0)


@pytest.mark.parametrize("field", ["nbf", "iat"])
def test_token_from_the_future_is_not_yet_valid(forge: Forge, trust: TrustStore, field: str) -> None:
    token = forge(claims(**{field: NOW + 3600}))
    check_refused(token, trust, "not_yet_valid")


def test_other_audience_is_refused(ring: KeyRing, trust: TrustStore) -> None:
    check_refused(access(ring, audience="coop-z"), trust, "bad_audience")


def test_audience_list_must_contain_ours(forge: Forge, trust: TrustStore) -> None:
    assert verify(forge(claims(aud=["coop-z", NODE])), trust)
    check_refused(forge(claims(aud=["coop-z", "coop-y"])), trust, "bad_audience")


def test_issuer_outside_the_accepted_set_is_refused(peer_ring: KeyRing, trust: TrustStore) -> None:
    token = access(peer_ring, issuer=PEER)
    assert verify(token, trust).issuer == PEER  # pinned, so fine when any pinned issuer will do
    check_refused(token, trust, "bad_issuer", issuer=ISSUER)
    check_refused(token, trust, "bad_issuer", issuer={ISSUER, "coop-c"})


def test_unpinned_issuer_is_refused(trust: TrustStore) -> None:
    stranger = KeyRing()
    stranger.rotate()
    check_refused(access(stranger, issuer="coop-x"), trust, "bad_issuer")


def test_peer_cannot_sign_as_another_issuer(peer_ring: KeyRing, trust: TrustStore) -> None:
    """coop-b's key is pinned, but only for coop-b: a token claiming iss=coop-a must not verify."""
    token = access(peer_ring, issuer=ISSUER)
    check_refused(token, trust, "unknown_key")


def test_key_not_pinned_is_refused(forge: Forge, trust: TrustStore) -> None:
    attacker = SigningKey.generate()
    token = forge(header={"kid": attacker.kid}, key=attacker.private_key)
    check_refused(token, trust, "unknown_key")


def test_pinned_kid_with_another_key_is_a_bad_signature(forge: Forge, trust: TrustStore) -> None:
    check_refused(forge(key=Ed25519PrivateKey.generate()), trust, "bad_signature")


@pytest.mark.parametrize("header", [{"kid": ...}, {"kid": ""}, {"kid": 7}, {"kid": ["x"]}])
def test_kid_is_required(forge: Forge, trust: TrustStore, header: dict[str, Any]) -> None:
    check_refused(forge(header=header), trust, "unknown_key")


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_refused(forge: Forge, trust: TrustStore, alg: str) -> None:
    token = forge(header={"alg": alg})
    check_refused(token.rsplit(".", 1)[0] + ".", trust, "bad_algorithm")
    check_refused(token, trust, "bad_algorithm")


@pytest.mark.parametrize("encoding", ["pem", "raw", "jwk_x"])
def test_hs256_with_the_public_key_as_secret_is_refused(
    forge: Forge, ring: KeyRing, trust: TrustStore, encoding: str
) -> None:
    """Algorithm confusion: the public key used as an HMAC secret must never verify."""
    public = ring.signer.public_key
    secret = {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "raw": public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
        "jwk_x": ring.signer.public_jwk()["x"].encode(),
    }[encoding]
    check_refused(forge(header={"alg": "HS256"}, hmac_secret=secret), trust, "bad_algorithm")


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "HS512", "Ed25519", "EdDSA ", "eddsa", None, 1])
def test_any_other_alg_is_refused(forge: Forge, trust: TrustStore, alg: object) -> None:
    check_refused(forge(header={"alg": alg}), trust, "bad_algorithm")


def test_missing_alg_is_refused(forge: Forge, trust: TrustStore) -> None:
    check_refused(forge(header={"alg": ...}), trust, "bad_algorithm")


def _replace_segment(token: str, index: int, obj: dict[str, Any]) -> str:
    parts = token.split(".")
    parts[index] = b64url(json.dumps(obj).encode())
    return ".".join(parts)


def test_tampered_payload_is_refused(ring: KeyRing, trust: TrustStore) -> None:
    token = access(ring)
    payload = json.loads(b64url_decode(token.split(".")[1]))
    check_refused(_replace_segment(token, 1, {**payload, "sub": "admin"}), trust, "bad_signature")
    check_refused(_replace_segment(token, 1, {**payload, "exp": NOW + 10**6}), trust, "bad_signature")


def test_tampered_header_is_refused(ring: KeyRing, trust: TrustStore) -> None:
    token = issue_token(ring, issuer=ISSUER, subject="u", audience=NODE, use=TokenUse.ACCESS, ttl=60)
    header = jwt.get_unverified_header(token)
    forged = _replace_segment(token, 0, {**header, "typ": TokenUse.GRANT.typ})
    check_refused(forged, trust, "bad_signature", use=TokenUse.GRANT)


def test_flipped_signature_bit_is_refused(ring: KeyRing, trust: TrustStore) -> None:
    token = access(ring)
    head, body, sig = token.split(".")
    raw = bytearray(b64url_decode(sig))
    raw[10] ^= 1
    check_refused(f"{head}.{body}.{b64url(bytes(raw))}", trust, "bad_signature")


def test_non_canonical_signature_encoding_is_refused(ring: KeyRing, trust: TrustStore) -> None:
    """Same signature bytes, another spelling: accepting it would make tokens malleable."""
    token = access(ring)
    head, body, sig = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = sig[:-1] + alphabet[alphabet.index(sig[-1]) ^ 1]  # flips an unused low bit
    assert b64url_decode(twin) == b64url_decode(sig)
    check_refused(f"{head}.{body}.{twin}", trust, "malformed")


def test_revoked_token_is_refused_with_the_reason(ring: KeyRing, trust: TrustStore) -> None:
    token = access(ring, jti="j-9")
    check_refused(token, trust, "revoked", revoked={"j-9"})
    revocations = RevocationList(ISSUER)
    revocations.revoke("j-9", reason="member left the co-op", expires_at=NOW + 600)
    with pytest.raises(TokenError, match="member left the co-op") as exc_info:
        verify(token, trust, revoked=revocations)
    assert exc_info.value.code == "revoked"
    assert verify(access(ring, jti="j-10"), trust, revoked=revocations)


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_each_required_claim_is_required(forge: Forge, trust: TrustStore, claim: str) -> None:
    check_refused(forge(claims(**{claim: ...})), trust, "missing_claim")
    check_refused(forge(claims(**{claim: None})), trust, "missing_claim")


@pytest.mark.parametrize(
    "bad",
    [
        {"exp": str(NOW + 600)},
        {"exp": float(NOW + 600)},
        {"nbf": True},
        {"iat": [NOW]},
        {"sub": 42},
        {"sub": ""},
        {"jti": {"id": 1}},
        {"aud": 5},
        {"aud": [NODE, 5]},
        {"aud": {"a": NODE}},
    ],
)
def test_ill_typed_claims_are_refused(forge: Forge, trust: TrustStore, bad: dict[str, Any]) -> None:
    check_refused(forge(claims(**bad)), trust, "malformed")


def test_iss_must_be_a_string(forge: Forge, trust: TrustStore) -> None:
    check_refused(forge(claims(iss=[ISSUER])), trust, "missing_claim")


@pytest.mark.parametrize(
    ("issued_as", "verified_as"),
    [
        (TokenUse.ACCESS, TokenUse.GRANT),
        (TokenUse.GRANT, TokenUse.ACCESS),
        (TokenUse.REVOCATION_LIST, TokenUse.GRANT),
        (TokenUse.ACCESS, TokenUse.REVOCATION_LIST),
    ],
)
def test_token_of_one_type_is_never_another(
    ring: KeyRing, trust: TrustStore, issued_as: TokenUse, verified_as: TokenUse
) -> None:
    check_refused(access(ring, use=issued_as), trust, "wrong_type", use=verified_as)


@pytest.mark.parametrize("typ", [..., "JWT", "coopfed-grant+jwt ", None])
def test_untyped_or_oddly_typed_token_is_refused(forge: Forge, trust: TrustStore, typ: object) -> None:
    check_refused(forge(header={"typ": typ}), trust, "wrong_type", use=TokenUse.GRANT)


def test_jwk_header_cannot_inject_the_attackers_key(forge: Forge, trust: TrustStore) -> None:
    """The header names the attacker's key (its own kid, or the victim's) and carries it inline."""
    attacker = SigningKey.generate()
    for kid in (attacker.kid, ring_kid(trust)):
        token = forge(header={"kid": kid, "jwk": attacker.public_jwk()}, key=attacker.private_key)
        check_refused(token, trust, "bad_header")


def ring_kid(trust: TrustStore) -> str:
    jwks = trust.jwks_for(ISSUER)
    assert jwks is not None
    return next(iter(jwks))


@pytest.mark.parametrize(
    "header",
    [
        {"jku": "https://attacker.example/jwks.json"},
        {"x5u": "https://attacker.example/cert.pem"},
        {"x5c": ["MIIB..."]},
        {"crit": ["exp"]},
        {"b64": False, "crit": ["b64"]},
        {"cty": "JWT"},
    ],
)
def test_other_header_parameters_are_refused(forge: Forge, trust: TrustStore, header: dict[str, Any]) -> None:
    check_refused(forge(header=header), trust, "bad_header")


def test_key_rotation_keeps_old_tokens_until_the_key_is_retired(tmp_path) -> None:
    ring = KeyRing.load_or_create(tmp_path / "keys")
    old_kid = ring.signer.kid
    old_token = access(ring)
    ring.rotate()
    new_token = access(ring)
    assert jwt.get_unverified_header(new_token)["kid"] == ring.signer.kid != old_kid

    trust = TrustStore({ISSUER: ring.jwks()})  # the node re-pins its own ring after rotating
    assert verify(old_token, trust).kid == old_kid
    assert verify(new_token, trust).kid == ring.signer.kid

    ring.retire(old_kid)
    trust.pin(ISSUER, KeyRing.load(tmp_path / "keys").jwks())
    check_refused(old_token, trust, "unknown_key")
    assert verify(new_token, trust)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "a..c",
        "***.***.***",
        "eyJhbGciOiJFZERTQSJ9.e30",
        "e30=.e30.AA",
        "W10.e30.AA",  # header is a JSON array
        "bm90IGpzb24.e30.AA",  # header is not JSON
        "x" * 20_000,
    ],
)
def test_malformed_tokens_are_refused(trust: TrustStore, token: str) -> None:
    check_refused(token, trust, "malformed")


@pytest.mark.parametrize("token", [None, b"a.b.c", 12])
def test_non_string_tokens_are_refused(trust: TrustStore, token: Any) -> None:
    with pytest.raises(TokenError) as exc_info:
        verify(token, trust)
    assert exc_info.value.code == "malformed"


def test_duplicate_claims_are_refused(ring: KeyRing, trust: TrustStore) -> None:
    """Two `aud` members: parsers disagree on which wins, so the token is refused outright."""
    body = json.dumps(claims())[:-1] + ', "aud": "coop-z"}'
    head = b64url(json.dumps({"alg": "EdDSA", "kid": ring.signer.kid, "typ": TokenUse.ACCESS.typ}).encode())
    signing_input = f"{head}.{b64url(body.encode())}"
    token = f"{signing_input}.{b64url(ring.signer.private_key.sign(signing_input.encode()))}"
    check_refused(token, trust, "malformed")


def test_every_error_code_is_distinct() -> None:
    from coopfed.federation import errors

    codes = [
        cls.code for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, TokenError)
    ]
    assert len(codes) == len(set(codes)) >= 13


def test_token_ids_are_safe_to_paste_into_a_command_line() -> None:
    ids = {new_jti() for _ in range(2_000)}
    assert len(ids) == 2_000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)  # hex: never starts with "-"
