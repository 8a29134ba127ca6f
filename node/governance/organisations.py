"""Organisations: registration, tokens, verification by the board, and assessment (stage 2)."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from coopfed.federation.tokens import TokenUse, issue_token
from coopfed.node.auth import Principal
from coopfed.node.credentials import verify_access
from coopfed.node.errors import InvalidArgument, PermissionDenied, Unauthenticated
from coopfed.node.limits import limit_of
from coopfed.node.policy import PolicyError
from coopfed.node.storage.records import Assessment, Organisation, OrganisationProfile

if TYPE_CHECKING:
    from coopfed.node.runtime import Node

ASSESSMENT_PATH = "coopfed/governance/organisation/assessment"
VERIFICATION_PATH = "coopfed/governance/verification"
ORG_TOKEN_TTL = 365 * 86_400
BOARD_ROLE = "board"
ORG_ROLE = "org"
_BOARD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _text(value: str, name: str, *, required: bool = False) -> str:
    text = value.strip()
    if required and not text:
        raise InvalidArgument(f"{name}: required", code=f"organisation.{name}", field=name)
    if len(text) > limit_of(name) or any(ord(c) < 32 for c in text):
        raise InvalidArgument(
            f"{name}: at most {limit_of(name)} characters, no control characters",
            code=f"organisation.{name}",
            field=name,
        )
    return text


def validate_profile(node: Node, profile: OrganisationProfile) -> OrganisationProfile:
    """Check a registration against the types and commitments in policy data."""
    conf = node.policy_data["governance"]["organisation"]
    if profile.type not in conf["types"]:
        known = ", ".join(sorted(conf["types"]))
        raise InvalidArgument(
            f"type: unknown {profile.type!r}; known: {known}", code="organisation.type", field="type"
        )
    for i, commitment in enumerate(profile.commitments):
        if commitment not in conf["commitments"]:
            known = ", ".join(sorted(conf["commitments"]))
            raise InvalidArgument(
                f"commitments[{i}]: unknown {commitment!r}; known: {known}",
                code="organisation.commitment",
                field=f"commitments[{i}]",
            )
    if len(set(profile.commitments)) != len(profile.commitments):
        raise InvalidArgument(
            "commitments: each at most once", code="organisation.commitment", field="commitments"
        )
    return OrganisationProfile(
        name=_text(profile.name, "name", required=True),
        type=profile.type,
        registration_number=_text(profile.registration_number, "registration_number"),
        website=_text(profile.website, "website"),
        contact=_text(profile.contact, "contact"),
        commitments=tuple(profile.commitments),
        description=_text(profile.description, "description"),
    )


def assess(
    node: Node,
    organisation_id: str,
    verified: bool,
    commitments: tuple[str, ...],
    type_: str,
    now: int,
    *,
    new: bool = False,
) -> tuple[Assessment, dict[str, Any]]:
    """Evaluate the organisation policy; returns the assessment and its (unwritten) log event."""
    completed, revoked = (0, 0) if new else node.governance.track_record(organisation_id, now)
    policy_input = {
        "organisation": {
            "id": organisation_id,
            "type": type_,
            "commitments": list(commitments),
            "verified": verified,
            "track_record": {"completed_grants": completed, "revoked_grants": revoked},
        },
        "now": now,
    }
    revision = node.policy.revision
    result = node.policy.evaluate(ASSESSMENT_PATH, policy_input)
    if not isinstance(result, dict) or not isinstance(result.get("score"), int):
        raise PolicyError(f"{ASSESSMENT_PATH} did not return an assessment")
    event = node.decision_log.event(ASSESSMENT_PATH, policy_input, result, revision)
    return Assessment(event["decision_id"], revision, result), event


def register(node: Node, profile: OrganisationProfile) -> tuple[Organisation, str]:
    """Register an organisation, assess it (unverified) and issue its bearer token."""
    profile = validate_profile(node, profile)
    organisation_id = "org-" + uuid.uuid4().hex[:16]
    now = int(time.time())
    assessment, event = assess(node, organisation_id, False, profile.commitments, profile.type, now, new=True)
    org = Organisation(organisation_id, profile, datetime.now(UTC), assessment=assessment)
    with node.decision_log.batch(event) as log:
        node.governance.create_organisation(org, log)
    return org, issue_org_token(node, organisation_id)


def issue_org_token(node: Node, organisation_id: str) -> str:
    return issue_token(
        node.keys,
        issuer=node.node_id,
        subject=organisation_id,
        audience=node.node_id,
        use=TokenUse.ACCESS,
        ttl=ORG_TOKEN_TTL,
        claims={"role": ORG_ROLE},
    )


def issue_board_token(node_id: str, keys: Any, name: str, ttl: int) -> str:
    """A token for a board member, made on the node's machine (it needs the signing keys)."""
    if not _BOARD_NAME.fullmatch(name):
        raise InvalidArgument(
            "board member name: letters, digits, '.', '_' or '-', up to 64", code="board.name"
        )
    return issue_token(
        keys,
        issuer=node_id,
        subject=f"board:{name}",
        audience=node_id,
        use=TokenUse.ACCESS,
        ttl=ttl,
        claims={"role": BOARD_ROLE},
    )


def authenticate_org(node: Node, token: str) -> Principal:
    verified = verify_access(node, token, ORG_ROLE)
    org = node.governance.get_organisation(verified.subject)
    return Principal("organisation", org.organisation_id, dict(verified.claims))


def authenticate_board(node: Node, token: str) -> Principal:
    verified = verify_access(node, token, BOARD_ROLE)
    return Principal("board", verified.subject, dict(verified.claims))


def authenticate_board_or_member(node: Node, token: str) -> Principal:
    """The board by a board token, else a member by a member token."""
    try:
        return authenticate_board(node, token)
    except Unauthenticated as exc:
        if exc.code != "auth.role":
            raise
    return node.authenticate_member(token)


def own_organisation(caller_id: str, requested_id: str) -> str:
    if requested_id and requested_id != caller_id:
        raise PermissionDenied("an organisation may see only itself", code="organisation.not_owner")
    return caller_id


def current_assessment(node: Node, org: Organisation, now: int) -> tuple[Assessment, list[dict[str, Any]]]:
    """The reusable assessment if still current; else a fresh one with its log event."""
    if org.assessment is not None and org.assessment.current(now):
        return org.assessment, []
    profile = org.profile
    assessment, event = assess(
        node, org.organisation_id, org.verified, profile.commitments, profile.type, now
    )
    return assessment, [event]


def verify(node: Node, organisation_id: str, verified: bool, note: str, reviewer: str) -> Organisation:
    """The board verifies an organisation (or withdraws it); it is assessed again at once."""
    note = note.strip()
    if not note or len(note) > limit_of("note"):
        raise InvalidArgument(
            f"note: say what the board checked (1 to {limit_of('note')} characters)",
            code="review.note",
            field="note",
        )
    org = node.governance.get_organisation(organisation_id)
    now = int(time.time())
    assessment, event = assess(
        node, organisation_id, verified, org.profile.commitments, org.profile.type, now
    )
    record = node.decision_log.event(
        VERIFICATION_PATH,
        {"organisation_id": organisation_id, "reviewer": reviewer, "reason": note},
        {"verified": verified, "assessment_decision_id": assessment.decision_id},
        node.policy.revision,
    )
    with node.decision_log.batch(record, event) as log:
        return node.governance.set_verification(organisation_id, verified, note, assessment, log)
