"""Compact JWS (RFC 7515), signed and verified with one pinned algorithm: tokens, grants,
receipts, log heads and policy bundle signatures all pass through this parser.

Parsed here rather than by `jwt.decode` because the key depends on claims only a parsed token
shows (the issuer, the board key set), and because PyJWT's per-character base64 check costs
about as much as the signature itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import get_default_algorithms

from coopfed.federation import errors
from coopfed.federation.keys import b64url, b64url_decode

MAX_LENGTH = 16_384  # a grant is well under 2 KiB; refuse anything that could be a DoS
ALLOWED_HEADERS = frozenset({"alg", "typ", "kid"})  # jwk, jku, x5u, x5c, crit, b64... refused
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_ALGORITHMS = get_default_algorithms()


@dataclass(frozen=True)
class Jws:
    """A compact JWS split and decoded, its header checked, its signature not yet verified."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def kid(self) -> str:
        return str(self.header["kid"])

    def verify(self, key: Any) -> None:
        """Raise `BadSignature` unless `key` signed this, under the header's (checked) algorithm."""
        if not _ALGORITHMS[self.header["alg"]].verify(self.signing_input, key, self.signature):
            raise errors.BadSignature("signature does not verify")


def sign(payload: Mapping[str, Any], key: Any, *, algorithm: str, headers: Mapping[str, Any]) -> str:
    return jwt.encode(dict(payload), key, algorithm=algorithm, headers=dict(headers))


def parse(token: str, *, algorithm: str, max_length: int = MAX_LENGTH) -> Jws:
    """Split the compact form strictly and decode it without trusting it, or raise a `TokenError`.

    Only `algorithm` is accepted, only the headers alg, typ and kid, and kid is required.
    """
    if not isinstance(token, str) or not token:
        raise errors.Malformed("token must be a non-empty string")
    if len(token) > max_length:
        raise errors.Malformed("token too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise errors.Malformed("token is not three base64url segments")
    head, body, sig = parts
    # an empty signature gets through here to fail on alg ("none") or as bad_signature
    if not (_SEGMENT.fullmatch(head) and _SEGMENT.fullmatch(body)) or (sig and not _SEGMENT.fullmatch(sig)):
        raise errors.Malformed("token is not three base64url segments")
    header, payload = _json_object(head, "header"), _json_object(body, "payload")
    extra = set(header) - ALLOWED_HEADERS
    if extra:
        raise errors.BadHeader(f"header parameters not allowed: {sorted(extra)}")
    if header.get("alg") != algorithm:
        raise errors.BadAlgorithm(f"only {algorithm} is accepted")
    if not isinstance(header.get("kid"), str) or not header["kid"]:
        raise errors.UnknownKey("kid missing from header")
    return Jws(header, payload, f"{head}.{body}".encode("ascii"), _canonical_b64(sig, "signature"))


def unverified_header(segment: str) -> dict[str, Any]:
    """The header of a token's first segment, unverified, or {}: only to pick a verifier or a
    signature to replace, never to trust."""
    try:
        return _json_object(segment, "header")
    except errors.TokenError:
        return {}


def _canonical_b64(segment: str, name: str) -> bytes:
    """Decode base64url, refusing non-canonical spellings (they would make tokens malleable)."""
    try:
        data = b64url_decode(segment)
    except ValueError as exc:
        raise errors.Malformed(f"{name} is not base64url") from exc
    if b64url(data) != segment:
        raise errors.Malformed(f"{name} is not canonical base64url")
    return data


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Duplicate members would let two JSON parsers read different claims from one token."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise errors.Malformed("duplicate JSON member")
    return obj


_JSON = json.JSONDecoder(object_pairs_hook=_reject_duplicates)


def _json_object(segment: str, name: str) -> dict[str, Any]:
    raw = _canonical_b64(segment, name)
    try:
        value = _JSON.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise errors.Malformed(f"{name} is not JSON") from exc
    if not isinstance(value, dict):
        raise errors.Malformed(f"{name} is not a JSON object")
    return value
