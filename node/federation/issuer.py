"""The issuing side: who is calling, whether the policy grants, signing, revoking, live checks."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

import grpc

from coopfed.federation import jws
from coopfed.federation.grants import Grant, issue_grant, verify_grant
from coopfed.federation.keys import KeyRing
from coopfed.federation.revocation import RevocationEntry
from coopfed.federation.tls import peer_fingerprint
from coopfed.federation.tokens import TokenUse, verify_token
from coopfed.node.auth import Principal
from coopfed.node.decisionlog import DecisionLog
from coopfed.node.errors import InvalidArgument, PermissionDenied, Unauthenticated
from coopfed.node.federation.context import Federation
from coopfed.node.federation.decide import GRANT_PATH, GrantAsk, GrantDecision, decide_grant
from coopfed.node.federation.state import FederationState, PeerRecord, issued_record
from coopfed.node.policy.holder import PolicyHolder

PEER = "peer"  # a pinned peer, by its access token
GRANTEE = "peer_grant"  # a pinned peer, by a grant this node issued to it
MAX_ACCESS_TTL = 600  # an access token for a grant request is short-lived by design


@functools.lru_cache(maxsize=64)
def _typ(header: str) -> str:
    """The unverified `typ` of a header segment, only to pick the verifier (which checks it again,
    signed). Cached: every token signed with one key under one type has the same header."""
    return str(jws.unverified_header(header).get("typ", ""))


def authenticate(fed: Federation, keys: KeyRing, token: str) -> Principal:
    """A grant this node issued, or a pinned peer's own short-lived access token for this node."""
    header = token.split(".", 1)[0] if isinstance(token, str) else ""
    if len(header) <= 512 and _typ(header) == TokenUse.GRANT.typ:
        grant = verify_grant(
            token,
            trust=keys.trust(fed.node_id),  # a rotated key ring is picked up before anything is verified
            audience=fed.node_id,
            issuer=fed.node_id,
            revoked=fed.state.revocations(),
        )
        return Principal(GRANTEE, grant.subject, {"grant": grant})
    access = verify_token(token, trust=fed.state.peer_trust(), audience=fed.node_id, use=TokenUse.ACCESS)
    if access.subject != access.issuer:
        raise Unauthenticated(
            "a peer's access token must be about the peer itself", code="federation.subject"
        )
    if access.expires_at - access.issued_at > MAX_ACCESS_TTL:
        raise Unauthenticated(
            f"a peer's access token may live at most {MAX_ACCESS_TTL} s", code="federation.long_token"
        )
    if not fed.used_access_tokens.first_use(access.jti, access.expires_at, int(time.time())):
        raise Unauthenticated(
            "this access token was used before; a peer signs one per call", code="federation.replay"
        )
    return Principal(PEER, access.issuer, dict(access.claims))


async def check_peer(
    state: FederationState, principal: Principal, kind: str, context: grpc.aio.ServicerContext
) -> PeerRecord:
    """The caller is a pinned peer, by the expected credential, over its pinned TLS certificate."""
    if principal.kind != kind:
        wanted = "a grant issued by this node" if kind == GRANTEE else "a peer's access token"
        raise Unauthenticated(f"this method needs {wanted}", code="federation.credential")
    record = await asyncio.to_thread(lambda: state.peers().get(principal.id))  # a store read
    if record is None:
        raise Unauthenticated(
            f"{principal.id!r} is not a pinned peer of this node", code="federation.not_peer"
        )
    if peer_fingerprint(context) != record.manifest.tls_fingerprint:
        raise Unauthenticated(
            f"the TLS client certificate is not the one pinned for {principal.id!r}",
            code="federation.certificate",
        )
    return record


def grant_for_peer(
    fed: Federation,
    keys: KeyRing,
    policy: PolicyHolder,
    decision_log: DecisionLog,
    peer: PeerRecord,
    ask: GrantAsk,
) -> tuple[str, Grant, GrantDecision]:
    """Ask the federation policy; sign the grant it allows, or refuse with its reasons. The
    decision is in the decision log before the peer hears of it."""
    decision = decide_grant(policy, peer.manifest, ask)
    decision_id = decision_log.commit(GRANT_PATH, decision.question, decision.result, decision.revision)
    base: dict[str, Any] = {
        "peer": peer.peer_id,
        "request": ask.policy_input(),
        "reasons": list(decision.reasons),
    }
    base |= {"policy_hash": decision.revision, "allowed": decision.allowed, "decision_id": decision_id}
    if not decision.allowed:
        fed.state.record_decision({**base, "grant": None})
        raise PermissionDenied(" ".join(decision.reasons), code="federation.grant_refused")
    assert decision.scope is not None
    assert decision.constraints is not None
    token = issue_grant(
        keys,
        issuer=fed.node_id,
        subject=peer.peer_id,
        audience=fed.node_id,
        scope=decision.scope,
        constraints=decision.constraints,
        ttl=decision.ttl_seconds,
    )
    grant = verify_grant(token, trust=keys.trust(fed.node_id), audience=fed.node_id, issuer=fed.node_id)
    issued = issued_record(grant.jti, grant.subject, grant.expires_at, grant.scope, grant.constraints)
    fed.state.record_decision({**base, "grant": issued})
    return token, grant, decision


def revoke(state: FederationState, jti: str, reason: str) -> RevocationEntry:
    """Revoke a grant this node issued: refused here at once, and by peers at their next refresh."""
    reason = reason.strip()
    if not reason:
        raise InvalidArgument("a revocation needs a reason the grantee can read", code="federation.reason")
    issued = state.issued_grant(jti)
    return state.revoke(jti, reason=reason, expires_at=int(issued["expires_at"]))
