"""Issue and verify EdDSA JWTs against pinned per-issuer keys, with explicit token types."""

from __future__ import annotations

import secrets
import time
from collections.abc import Container, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from coopfed.federation import errors, jws
from coopfed.federation.keys import ALGORITHM, KeyRing, TrustStore

REQUIRED_CLAIMS = ("iss", "sub", "aud", "iat", "nbf", "exp", "jti")
DEFAULT_LEEWAY = 30  # seconds of clock skew tolerated between nodes
MAX_TOKEN_LENGTH = jws.MAX_LENGTH


class TokenUse(StrEnum):
    """What a token is for, carried in the signed `typ` header (RFC 8725 explicit typing)."""

    ACCESS = "access"  # a member's (or operator's) session with its own node
    GRANT = "grant"  # a data grant to a third party or a peer co-op
    REVOCATION_LIST = "revocation-list"  # an issuer's signed list of revoked grants
    CONSENT_RECEIPT = "consent-receipt"  # a member's evidence of the consent they gave
    LOG_HEAD = "log-head"  # a node's signed statement of its decision log's head, kept by witnesses

    @property
    def typ(self) -> str:
        return f"coopfed-{self.value}+jwt"


@dataclass(frozen=True)
class VerifiedToken:
    """The claims of a token that passed every check."""

    issuer: str
    subject: str
    audience: tuple[str, ...]
    issued_at: int
    not_before: int
    expires_at: int
    jti: str
    kid: str
    use: TokenUse
    claims: Mapping[str, Any]


def new_jti() -> str:
    """128 random bits in hex: ids people paste into commands never start with "-"."""
    return secrets.token_hex(16)


def issue_token(
    ring: KeyRing,
    *,
    issuer: str,
    subject: str,
    audience: str,
    use: TokenUse,
    ttl: int,
    claims: Mapping[str, Any] | None = None,
    now: int | None = None,
    not_before: int | None = None,
    jti: str | None = None,
) -> str:
    """Sign a token with the ring's active key; `claims` adds non-registered claims."""
    extra = dict(claims or {})
    clash = set(extra) & set(REQUIRED_CLAIMS)
    if clash:
        raise ValueError(f"claims may not override registered claims: {sorted(clash)}")
    if ttl <= 0 or not (issuer and subject and audience):
        raise ValueError("issuer, subject and audience must be non-empty and ttl positive")
    iat = int(time.time()) if now is None else int(now)
    payload = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": iat,
        "nbf": iat if not_before is None else int(not_before),
        "exp": iat + int(ttl),
        "jti": jti or new_jti(),
        **extra,
    }
    signer = ring.signer
    headers = {"kid": signer.kid, "typ": use.typ}
    return jws.sign(payload, signer.private_key, algorithm=ALGORITHM, headers=headers)


def verify_token(
    token: str,
    *,
    trust: TrustStore,
    audience: str,
    use: TokenUse,
    issuer: str | Container[str] | None = None,
    revoked: Container[str] | None = None,
    leeway: int = DEFAULT_LEEWAY,
    now: int | None = None,
    max_length: int = MAX_TOKEN_LENGTH,
) -> VerifiedToken:
    """Verify `token` or raise a `TokenError`.

    The algorithm is always EdDSA; the key is looked up by `kid` among the keys pinned for the
    token's issuer only (key-carrying headers are refused); every registered claim is required.
    `issuer` restricts which pinned issuers are acceptable; `revoked` holds revoked jtis (a
    `RevocationList`, a set, or anything supporting `in`).
    """
    parsed = jws.parse(token, algorithm=ALGORITHM, max_length=max_length)
    header, payload = parsed.header, parsed.payload
    iss = payload.get("iss")
    if not isinstance(iss, str) or not iss:
        raise errors.MissingClaim("iss missing or not a string")
    if not _issuer_accepted(iss, issuer):
        raise errors.BadIssuer("issuer not accepted here")
    if iss not in trust:
        raise errors.BadIssuer("issuer has no pinned keys")
    key = trust.key_for(iss, parsed.kid)
    if key is None:
        raise errors.UnknownKey("kid not among the issuer's pinned keys")
    parsed.verify(key)
    # From here on header and payload are the issuer's own words.
    if header.get("typ") != use.typ:
        raise errors.WrongType(f"expected a {use.value} token")
    result = _claims(payload, parsed.kid, use)
    _check_audience(result, audience)
    _check_times(result, int(time.time()) if now is None else now, leeway)
    if revoked is not None and result.jti in revoked:
        reason_for = getattr(revoked, "reason_for", None)
        raise errors.Revoked((reason_for(result.jti) if callable(reason_for) else "") or "")
    return result


def _issuer_accepted(iss: str, accepted: str | Container[str] | None) -> bool:
    if accepted is None:
        return True
    return iss == accepted if isinstance(accepted, str) else iss in accepted


def _claims(payload: dict[str, Any], kid: str, use: TokenUse) -> VerifiedToken:
    """Require every registered claim, with its proper JSON type."""
    for claim in REQUIRED_CLAIMS:
        if payload.get(claim) is None:
            raise errors.MissingClaim(f"{claim} claim missing")
    for claim in ("sub", "jti"):
        if not isinstance(payload[claim], str) or not payload[claim]:
            raise errors.Malformed(f"{claim} must be a non-empty string")
    for claim in ("iat", "nbf", "exp"):
        if type(payload[claim]) is not int:
            raise errors.Malformed(f"{claim} must be an integer")
    aud = payload["aud"]
    audience = (aud,) if isinstance(aud, str) else aud
    if not isinstance(audience, list | tuple) or not all(isinstance(a, str) for a in audience):
        raise errors.Malformed("aud must be a string or a list of strings")
    return VerifiedToken(
        issuer=payload["iss"],
        subject=payload["sub"],
        audience=tuple(audience),
        issued_at=payload["iat"],
        not_before=payload["nbf"],
        expires_at=payload["exp"],
        jti=payload["jti"],
        kid=kid,
        use=use,
        claims=MappingProxyType(payload),
    )


def _check_audience(token: VerifiedToken, audience: str) -> None:
    if audience not in token.audience:
        raise errors.BadAudience("token is meant for another audience")


def _check_times(token: VerifiedToken, now: int, leeway: int) -> None:
    if token.expires_at <= now - leeway:
        raise errors.Expired("token has expired")
    if token.not_before > now + leeway:
        raise errors.NotYetValid("token is not valid yet (nbf)")
    if token.issued_at > now + leeway:
        raise errors.NotYetValid("token was issued in the future (iat)")
