"""Credentials the node issues to people: member, organisation and board tokens issued, verified
by role and revoked (one token by its jti, or every token of a subject issued before now), in
one place.

Revocations are stored (append-only) and held in memory, refreshed on every write, so the check
on each call costs two dictionary look-ups and never a database read on the event loop.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from coopfed.federation.keys import KeyRing, TrustStore
from coopfed.federation.tokens import TokenUse, VerifiedToken, issue_token, verify_token
from coopfed.node.auth import Principal
from coopfed.node.decisionlog import DecisionLog
from coopfed.node.errors import InvalidArgument, Unauthenticated
from coopfed.node.limits import limit_of
from coopfed.node.policy.holder import PolicyHolder
from coopfed.node.settings import NodeSection
from coopfed.node.storage import Store
from coopfed.node.storage.governance import GovernanceStore
from coopfed.node.storage.records import TokenRevocation

REVOCATION_PATH = "coopfed/governance/token_revocation"
BOARD_PREFIX = "board:"
BOARD_ROLE = "board"
MEMBER_ROLE = "member"
ORG_ROLE = "org"
ORG_TOKEN_TTL = 365 * 86_400
DAY = 86_400
_BOARD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
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


def issue_board_token(node_id: str, keys: KeyRing, name: str, ttl: int) -> str:
    """A token for a board member, made on the node's machine (it needs the signing keys)."""
    if not _BOARD_NAME.fullmatch(name):
        raise InvalidArgument(
            "board member name: letters, digits, '.', '_' or '-', up to 64", code="board.name"
        )
    return _issue(keys, node_id, BOARD_PREFIX + name, BOARD_ROLE, ttl)


def _issue(keys: KeyRing, node_id: str, subject: str, role: str, ttl: int, now: int | None = None) -> str:
    return issue_token(
        keys, issuer=node_id, subject=subject, audience=node_id, use=TokenUse.ACCESS, ttl=ttl,
        claims={"role": role}, now=now,
    )  # fmt: skip


class Credentials:
    """The node's tokens for people. Reads the key ring in use at each call, so a rotation or a
    retirement counts at once; revocations are logged, stored, then held in memory."""

    def __init__(
        self,
        settings: NodeSection,
        keys: KeyRing,
        members: Store,
        governance: GovernanceStore,
        decision_log: DecisionLog,
        policy: PolicyHolder,
    ) -> None:
        self.node_id = settings.id
        self._settings, self._keys, self._members = settings, keys, members
        self._governance, self._log, self._policy = governance, decision_log, policy
        self.revoked = RevokedTokens(governance.token_revocations())

    # --- issuing ---------------------------------------------------------------------------

    def issue_member_token(self, member_id: str, now: int | None = None) -> str:
        ttl = self._settings.member_token_ttl_days * DAY
        return _issue(self._keys, self.node_id, member_id, MEMBER_ROLE, ttl, now)

    def issue_org_token(self, organisation_id: str) -> str:
        return _issue(self._keys, self.node_id, organisation_id, ORG_ROLE, ORG_TOKEN_TTL)

    @property
    def board_token_ttl(self) -> int:
        return self._settings.board_token_ttl_hours * 3600

    def own_trust(self) -> TrustStore:
        """This node's own keys, current and not yet retired, as the only trusted issuer."""
        return self._keys.trust(self.node_id)

    # --- verifying -------------------------------------------------------------------------

    def verify(self, token: str, role: str) -> VerifiedToken:
        """A valid access token of this node for `role`, signed by a key in the ring now, not
        revoked; a board token no longer-lived than the node allows."""
        verified = verify_token(
            token, trust=self.own_trust(), issuer=self.node_id, audience=self.node_id, use=TokenUse.ACCESS
        )
        if verified.claims.get("role") != role:
            raise Unauthenticated(f"not {_ROLE_NAMES.get(role, role)} token", code="auth.role")
        reason = self.revoked.reason_for(verified)
        if reason is not None:
            raise Unauthenticated(f"this token was revoked: {reason}", code="auth.revoked")
        if role == BOARD_ROLE and verified.expires_at - verified.issued_at > self.board_token_ttl:
            raise Unauthenticated(
                f"board tokens may live at most {self._settings.board_token_ttl_hours} hours; "
                "make a new one on the node's machine (`coopfed review token`)",
                code="auth.long_token",
            )
        return verified

    def authenticate_member(self, token: str) -> Principal:
        """A valid member token of this node, for a member who has not been erased."""
        verified = self.verify(token, MEMBER_ROLE)
        member = self._members.get_member(verified.subject)
        if member.erased:
            raise Unauthenticated("this member has been erased", code="auth.erased")
        return Principal("member", member.member_id, dict(verified.claims))

    def authenticate_org(self, token: str) -> Principal:
        verified = self.verify(token, ORG_ROLE)
        org = self._governance.get_organisation(verified.subject)
        return Principal("organisation", org.organisation_id, dict(verified.claims))

    def authenticate_board(self, token: str) -> Principal:
        verified = self.verify(token, BOARD_ROLE)
        return Principal("board", verified.subject, dict(verified.claims))

    def authenticate_board_or_member(self, token: str) -> Principal:
        """The board by a board token, else a member by a member token."""
        try:
            return self.authenticate_board(token)
        except Unauthenticated as exc:
            if exc.code != "auth.role":
                raise
        return self.authenticate_member(token)

    # --- revoking --------------------------------------------------------------------------

    def revoke(
        self,
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
            most = limit_of("reason")
            raise InvalidArgument(
                f"reason: say why (1 to {most} characters)", code="revoke.reason", field="reason"
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
            issued_before=max(at, self.revoked.issued_before(subject)) + 1 if subject else 0,
        )
        # Logged under the names the co-op's masking rules pseudonymise (member, reviewer).
        what: dict[str, Any] = {"jti": jti} if jti else {"member" if member else "subject": subject}
        if subject:
            what["issued_before"] = revocation.issued_before
        event = self._log.event(
            REVOCATION_PATH,
            {**what, "reviewer": revoked_by, "reason": reason},
            {"revoked": True},
            self._policy.revision,
        )
        with self._log.batch(event) as log:  # durable before the refusal anyone can see
            self._governance.revoke_tokens(revocation, log)
        self.revoked.add(revocation)
        return revocation

    def sign_out_everywhere(self, member_id: str) -> str:
        """Revoke every token of the member issued until now; the fresh token returned is issued at
        the first second the revocation no longer covers."""
        revocation = self.revoke(
            reason="the member signed out everywhere", revoked_by=member_id, subject=member_id, member=True
        )
        return self.issue_member_token(member_id, now=revocation.issued_before)

    def revoke_target(self, target: str, value: str, reason: str, reviewer: str) -> TokenRevocation:
        """The board revokes a token (`jti`), or every token of a `member_id`, `organisation_id` or
        `board_member` issued until now; a member or organisation must be known here."""
        value = value.strip()
        if target == "jti":
            return self.revoke(reason=reason, revoked_by=reviewer, jti=value)
        if target == "member_id":
            self._members.get_member(value)  # NotFound for a member this node never had
        elif target == "organisation_id":
            self._governance.get_organisation(value)
        elif target == "board_member":
            value = BOARD_PREFIX + value
        else:
            raise InvalidArgument("name a token id, member, organisation or board member", code="revoke.what")
        return self.revoke(reason=reason, revoked_by=reviewer, subject=value, member=target == "member_id")

    def renew_board_token(self, claims: dict[str, Any]) -> tuple[str, int]:
        """A fresh board token for the caller's valid one, which is revoked: a copy of it dies too."""
        name = str(claims["sub"]).removeprefix(BOARD_PREFIX)
        token = issue_board_token(self.node_id, self._keys, name, self.board_token_ttl)
        self.revoke(reason="renewed", revoked_by=str(claims["sub"]), jti=str(claims["jti"]))
        return token, int(time.time()) + self.board_token_ttl
