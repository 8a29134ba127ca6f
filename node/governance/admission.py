"""The board's side of membership: applicants, admitting or refusing them, and invitations."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from coopfed.node.errors import FailedPrecondition, InvalidArgument
from coopfed.node.limits import limit_of
from coopfed.node.members import ADMISSION_PATH, invitation_hash
from coopfed.node.storage import Member, NotAnApplicant

if TYPE_CHECKING:
    from coopfed.node.decisionlog import DecisionLog
    from coopfed.node.policy.holder import PolicyHolder
    from coopfed.node.storage import Store
    from coopfed.node.storage.governance import GovernanceStore

INVITATION_PATH = "coopfed/membership/invitation"
DEFAULT_INVITATION_DAYS = 14
MAX_INVITATION_DAYS = 90
_MAX_REASON = limit_of("reason")


def _reason(text: str) -> str:
    reason = text.strip()
    if not reason or len(reason) > _MAX_REASON:
        raise InvalidArgument(
            f"reason: say why, in 1 to {_MAX_REASON} characters", code="review.reason", field="reason"
        )
    return reason


def decide(
    governance: GovernanceStore,
    decision_log: DecisionLog,
    policy: PolicyHolder,
    member_id: str,
    admit: bool,
    reason: str,
    reviewer: str,
) -> tuple[Member, str]:
    """Admit or refuse an applicant; the decision is logged in the same transaction."""
    reason = _reason(reason)
    event = decision_log.event(
        ADMISSION_PATH,
        {"member_id": member_id, "by": reviewer, "reason": reason},
        {"admitted": admit},
        policy.revision,
    )
    try:
        with decision_log.batch(event) as events:
            member = governance.decide_admission(member_id, admit, reviewer, reason, events)
    except NotAnApplicant:
        raise FailedPrecondition(
            f"member {member_id} was admitted already; a member leaves by erasing their data",
            code="review.not_an_applicant",
            field="member_id",
        ) from None
    return member, event["decision_id"]


def invite(
    store: Store, decision_log: DecisionLog, policy: PolicyHolder, days: int, reviewer: str
) -> tuple[str, str, datetime]:
    """A single-use invitation: (its id, the code, shown only now, and when it expires)."""
    days = days or DEFAULT_INVITATION_DAYS
    if not 1 <= days <= MAX_INVITATION_DAYS:
        raise InvalidArgument(
            f"expires_days: 1 to {MAX_INVITATION_DAYS}", code="review.expires_days", field="expires_days"
        )
    invitation_id = "inv-" + uuid.uuid4().hex[:12]
    code = secrets.token_urlsafe(16)
    expires = datetime.now(UTC) + timedelta(days=days)
    store.create_invitation(invitation_id, invitation_hash(code), expires, created_by=reviewer)
    decision_log.append(
        decision_log.event(
            INVITATION_PATH,
            {"invitation_id": invitation_id, "by": reviewer, "expires_at": expires.isoformat()},
            {"issued": True},
            policy.revision,
        )
    )
    return invitation_id, code, expires
