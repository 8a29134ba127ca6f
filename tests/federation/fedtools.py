"""Helpers for the federation tests: valid claim sets, hand-made JWS, and the refusal check."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from coopfed.federation.errors import TokenError
from coopfed.federation.keys import b64url

ISSUER, PEER, NODE = "coop-a", "coop-b", "coop-a"
NOW = int(time.time())

Forge = Callable[..., str]


def claims(**overrides: Any) -> dict[str, Any]:
    """A complete, valid claim set; pass a value of `...` to drop a claim."""
    base = {
        "iss": ISSUER,
        "sub": "member-1",
        "aud": NODE,
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 600,
        "jti": "jti-1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def sign_compact(header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    head = b64url(json.dumps(header, separators=(",", ":")).encode())
    body = b64url(json.dumps(payload, separators=(",", ":")).encode())
    signing_input = f"{head}.{body}".encode()
    return f"{head}.{body}.{b64url(sign(signing_input))}"


def hmac_signer(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


def refused(exc_info: pytest.ExceptionInfo[TokenError], token: str, code: str) -> None:
    """The error has the expected stable code and does not echo the token or its signature."""
    assert exc_info.value.code == code, f"{exc_info.value.code}: {exc_info.value}"
    message = str(exc_info.value)
    signature = token.rsplit(".", 1)[-1]
    for secret in (token, signature):
        assert len(secret) < 8 or secret not in message  # short strings may occur by chance
