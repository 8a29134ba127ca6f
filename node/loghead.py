"""Signed heads of the decision log: what the node signs at every append, and witnesses keep.

A signed head is a compact JWS (typ coopfed-log-head+jwt) by the node's Ed25519 key whose
claims say which entry ends the log and what its hash is: iss (and sub, aud) is the node id,
iat the moment (`at`), and `seq` and `hash` the head. Every append signs the new head in the
same transaction as the entries (so every entry the node wrote is covered by a signed head,
even after a SIGKILL), and aligned peers keep the heads they were shown (`ExchangeLogHeads`),
as Certificate Transparency's witnesses do: an operator can edit the database, but cannot
take back a head a peer holds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from coopfed.federation import errors, jws
from coopfed.federation.keys import ALGORITHM, KeyRing, TrustStore
from coopfed.federation.tokens import TokenUse, issue_token, verify_token

_HASH = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class SignedHead:
    """A head whose signature verified: entry `seq` of `node_id`'s log has hash `hash`."""

    node_id: str
    seq: int
    hash: str
    at: datetime
    kid: str
    token: str


def sign_head(ring: KeyRing, node_id: str, seq: int, digest: str, now: int | None = None) -> str:
    # A head states a moment, it is no credential: it is checked as of its own iat (see
    # verify_head), so its exp says nothing and is the shortest the token helper allows.
    return issue_token(
        ring,
        issuer=node_id,
        subject=node_id,
        audience=node_id,
        use=TokenUse.LOG_HEAD,
        ttl=1,
        claims={"seq": seq, "hash": digest},
        now=now,
        jti=f"{seq}-{digest[:32]}",
    )


def verify_head(token: str, trust: TrustStore, node_id: str) -> SignedHead:
    """The head `token` states, signed by one of `node_id`'s keys in `trust`; else a TokenError."""
    iat = jws.parse(token, algorithm=ALGORITHM).payload.get("iat")  # verified below, as of itself
    verified = verify_token(
        token,
        trust=trust,
        audience=node_id,
        issuer=node_id,
        use=TokenUse.LOG_HEAD,
        now=iat if type(iat) is int else 0,
    )
    seq, digest = verified.claims.get("seq"), verified.claims.get("hash")
    if type(seq) is not int or seq < 1 or not isinstance(digest, str) or not _HASH.fullmatch(digest):
        raise errors.Malformed("a signed head needs a positive seq and a SHA-256 hash")
    at = datetime.fromtimestamp(verified.issued_at, UTC)
    return SignedHead(node_id, seq, digest, at, verified.kid, token)


class HeadSigner:
    """The node's signing of its own heads, with whatever key ring is current (rotations apply)."""

    def __init__(self, node_id: str, ring: Callable[[], KeyRing]) -> None:
        self.node_id, self._ring = node_id, ring

    def sign(self, seq: int, digest: str) -> str:
        return sign_head(self._ring(), self.node_id, seq, digest)

    def trust(self) -> TrustStore:
        return TrustStore({self.node_id: self._ring().jwks()})

    def check(self, token: str) -> SignedHead:
        return verify_head(token, self.trust(), self.node_id)
