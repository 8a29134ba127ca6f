"""Credentials the node issued to people: verifying member, organisation and board tokens in one
place, and revoking them (one token by its jti, or every token of a subject issued before now).

Revocations are stored (append-only) and held in memory, refreshed on every write, so the check
on each call costs two dictionary look-ups and never a database read on the event loop.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from coopfed.federation.tokens import TokenUse, VerifiedToken, verify_token
from coopfed.node.errors import InvalidArgument, Unauthenticated
from coopfed.node.limits import limit_of
from coopfed.node.storage.records import TokenRevocation

if TYPE_CHECKING:
    from coopfed.node.runtime import Node

REVOCATION_PATH = "coopfed/governance/token_revocation"
BOARD_PREFIX = "board:"
_JTI = re.compile(r"[0-9A-Za-z_-]{1,128}")
_ROLE_NAMES = {"member": "a member", "org": "an organisation", "board": "a board"}


class RevokedTokens:
    """Every revocation in force, in memory: jti -> reason, subject -> (issued before, reason)."""

    def __init__(self, revocations: Iterable[TokenRevocation] = ()) -> None:
        self._jtis: dict[str, str] = {}
        self._subjects: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()
        for revocation in revocations:
            self.add(revocation)

    def add(self, revocation: TokenRevocation) -> None:
        with self._lock:
            if revocation.jti:
                self._jtis.setdefault(revocation.jti, revocation.reason)
            elif revocation.issued_before > self._subjects.get(revocation.subject, (0, ""))[0]:
                self._subjects[revocation.subject] = (revocation.issued_before, revocation.reason)

    def issued_before(self, subject: str) -> int:
        """Tokens of `subject` issued before this moment (unix s) are revoked; 0 when none are."""
        return self._subjects.get(subject, (0, ""))[0]

    def reason_for(self, token: VerifiedToken) -> str | None:
        """Why `token` is revoked, or None while it is not."""
        reason = self._jtis.get(token.jti)
        if reason is not None:
            return reason
        before, reason = self._subjects.get(token.subject, (0, ""))
        return reason if token.issued_at < before else None


def verify_access(node: Node, token: str, role: str) -> VerifiedToken:
    """A valid access token of this node for `role`, signed by a key in the ring now, not revoked;
    a board token no longer-lived than the node allows."""
    verified = verify_token(
        token, trust=node.own_trust(), issuer=node.node_id, audience=node.node_id, use=TokenUse.ACCESS
    )
    if verified.claims.get("role") != role:
        raise Unauthenticated(f"not {_ROLE_NAMES.get(role, role)} token", code="auth.role")
    reason = node.revoked_tokens.reason_for(verified)
    if reason is not None:
        raise Unauthenticated(f"this token was revoked: {reason}", code="auth.revoked")
    if role == "board" and verified.expires_at - verified.issued_at > board_token_ttl(node):
        raise Unauthenticated(
            f"board tokens may live at most {node.settings.node.board_token_ttl_hours} hours; "
            "make a new one on the node's machine (`coopfed review token`)",
            code="auth.long_token",
        )
    return verified


def board_token_ttl(node: Node) -> int:
    return node.settings.node.board_token_ttl_hours * 3600


def revoke(
    node: Node,
    *,
    reason: str,
    revoked_by: str,
    jti: str = "",
    subject: str = "",
    member: bool = False,
    now: int | None = None,
) -> TokenRevocation:
    """Revoke one token by jti, or every token of `subject` issued up to now; logged, stored,
    then refused on the next call."""
    reason = reason.strip()
    if not reason or len(reason) > limit_of("reason"):
        raise InvalidArgument(
            f"reason: say why (1 to {limit_of('reason')} characters)", code="revoke.reason", field="reason"
        )
    if bool(jti) == bool(subject):
        raise InvalidArgument(
            "name one token id, or one member, organisation or board member", code="revoke.what"
        )
    if jti and not _JTI.fullmatch(jti):
        raise InvalidArgument("a token id is letters, digits, '-' or '_', up to 128", code="revoke.jti")
    at = int(time.time()) if now is None else now
    revocation = TokenRevocation(
        reason,
        revoked_by,
        datetime.now(UTC),
        jti=jti,
        subject=subject,
        # Past the last revocation's moment too: a token issued just after it (a sign-out's fresh
        # token, one second ahead) falls under this one even within the same second.
        issued_before=max(at, node.revoked_tokens.issued_before(subject)) + 1 if subject else 0,
    )
    # Logged under the names the co-op's masking rules pseudonymise (member, reviewer).
    what: dict[str, Any] = {"jti": jti} if jti else {"member" if member else "subject": subject}
    if subject:
        what["issued_before"] = revocation.issued_before
    decisions, store = node.decision_log, node.governance
    assert decisions is not None  # open_node makes both
    assert store is not None
    event = decisions.event(
        REVOCATION_PATH,
        {**what, "reviewer": revoked_by, "reason": reason},
        {"revoked": True},
        node.policy.revision,
    )
    with decisions.batch(event) as log:  # durable before the refusal anyone can see
        store.revoke_tokens(revocation, log)
    node.revoked_tokens.add(revocation)
    return revocation


def sign_out_everywhere(node: Node, member_id: str) -> str:
    """Revoke every token of the member issued until now; the fresh token returned is issued at
    the first second the revocation no longer covers."""
    revocation = revoke(
        node, reason="the member signed out everywhere", revoked_by=member_id, subject=member_id, member=True
    )
    return node.issue_member_token(member_id, now=revocation.issued_before)


def revoke_target(node: Node, target: str, value: str, reason: str, reviewer: str) -> TokenRevocation:
    """The board revokes a token (`jti`), or every token of a `member_id`, `organisation_id` or
    `board_member` issued until now; a member or organisation must be known here."""
    value = value.strip()
    if target == "jti":
        return revoke(node, reason=reason, revoked_by=reviewer, jti=value)
    if target == "member_id":
        node.store.get_member(value)  # NotFound for a member this node never had
    elif target == "organisation_id":
        assert node.governance is not None
        node.governance.get_organisation(value)
    elif target == "board_member":
        value = BOARD_PREFIX + value
    else:
        raise InvalidArgument("name a token id, member, organisation or board member", code="revoke.what")
    return revoke(node, reason=reason, revoked_by=reviewer, subject=value, member=target == "member_id")


def renew_board_token(node: Node, claims: dict[str, Any]) -> tuple[str, int]:
    """A fresh board token for the caller's valid one, which is revoked: a copy of it dies too."""
    from coopfed.node.governance.organisations import issue_board_token  # it imports this module

    name = str(claims["sub"]).removeprefix(BOARD_PREFIX)
    ttl = board_token_ttl(node)
    token = issue_board_token(node.node_id, node.keys, name, ttl)
    revoke(node, reason="renewed", revoked_by=str(claims["sub"]), jti=str(claims["jti"]))
    return token, int(time.time()) + ttl
