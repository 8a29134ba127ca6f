"""Fixtures for the federation tests: key rings, pinned trust, a grant scope, and a token forger."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedtools import ISSUER, PEER, Forge, claims, hmac_signer, sign_compact

from coopfed.federation.grants import GrantScope
from coopfed.federation.keys import KeyRing, TrustStore
from coopfed.federation.tokens import TokenUse


@pytest.fixture
def ring() -> KeyRing:
    ring = KeyRing()
    ring.rotate()
    return ring


@pytest.fixture
def peer_ring() -> KeyRing:
    ring = KeyRing()
    ring.rotate()
    return ring


@pytest.fixture
def trust(ring: KeyRing, peer_ring: KeyRing) -> TrustStore:
    """The node pins its own keys and one peer's."""
    return TrustStore({ISSUER: ring.jwks(), PEER: peer_ring.jwks()})


@pytest.fixture
def scope() -> GrantScope:
    return GrantScope(
        datasets={"demand", "generation"},
        fields={"kwh", "member_count"},
        period_start=1_704_067_200,  # 2024-01-01
        period_end=1_735_689_600,  # 2025-01-01
        purpose="dpv:ResearchAndDevelopment",
        flow="third_party",
    )


@pytest.fixture
def forge(ring: KeyRing) -> Forge:
    """Build a compact JWS by hand: by default a valid access token signed with the ring's key.

    `key` signs with another Ed25519 key, `hmac_secret` makes an HS256 MAC, `header` replaces
    header members (a value of `...` drops one).
    """

    def make(
        payload: dict[str, Any] | None = None,
        *,
        header: dict[str, Any] | None = None,
        key: Ed25519PrivateKey | None = None,
        hmac_secret: bytes | None = None,
    ) -> str:
        head = {"alg": "EdDSA", "kid": ring.signer.kid, "typ": TokenUse.ACCESS.typ, **(header or {})}
        head = {k: v for k, v in head.items() if v is not ...}
        body = claims() if payload is None else payload
        if hmac_secret is not None:
            return sign_compact(head, body, hmac_signer(hmac_secret))
        return sign_compact(head, body, (key or ring.signer.private_key).sign)

    return make
