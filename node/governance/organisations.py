"""Organisations: registration, verification by the board, and assessment (stage 2)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from coopfed.node.errors import InvalidArgument, PermissionDenied
from coopfed.node.limits import limit_of
from coopfed.node.policy import PolicyError
from coopfed.node.storage.records import Assessment, Organisation, OrganisationProfile

if TYPE_CHECKING:
    from coopfed.node.credentials import Credentials
    from coopfed.node.decisionlog import DecisionLog
    from coopfed.node.policy.holder import PolicyHolder
    from coopfed.node.storage.governance import GovernanceStore

ASSESSMENT_PATH = "coopfed/governance/organisation/assessment"
VERIFICATION_PATH = "coopfed/governance/verification"


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


class Organisations:
    """Registering organisations, the board's verification, and the organisation policy's assessment."""

    def __init__(
        self,
        governance: GovernanceStore,
        decision_log: DecisionLog,
        policy: PolicyHolder,
        credentials: Credentials,
    ) -> None:
        self._governance, self._log, self._policy, self._credentials = (
            governance,
            decision_log,
            policy,
            credentials,
        )

    def validate_profile(self, profile: OrganisationProfile) -> OrganisationProfile:
        """Check a registration against the types and commitments in policy data."""
        conf = self._policy.data["governance"]["organisation"]
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
        self,
        organisation_id: str,
        verified: bool,
        commitments: tuple[str, ...],
        type_: str,
        now: int,
        *,
        new: bool = False,
    ) -> tuple[Assessment, dict[str, Any]]:
        """Evaluate the organisation policy; returns the assessment and its (unwritten) log event."""
        completed, revoked = (0, 0) if new else self._governance.track_record(organisation_id, now)
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
        revision = self._policy.revision
        result = self._policy.evaluate(ASSESSMENT_PATH, policy_input)
        if not isinstance(result, dict) or not isinstance(result.get("score"), int):
            raise PolicyError(f"{ASSESSMENT_PATH} did not return an assessment")
        event = self._log.event(ASSESSMENT_PATH, policy_input, result, revision)
        return Assessment(event["decision_id"], revision, result), event

    def register(self, profile: OrganisationProfile) -> tuple[Organisation, str]:
        """Register an organisation, assess it (unverified) and issue its bearer token."""
        profile = self.validate_profile(profile)
        organisation_id = "org-" + uuid.uuid4().hex[:16]
        now = int(time.time())
        assessment, event = self.assess(
            organisation_id, False, profile.commitments, profile.type, now, new=True
        )
        org = Organisation(organisation_id, profile, datetime.now(UTC), assessment=assessment)
        with self._log.batch(event) as log:
            self._governance.create_organisation(org, log)
        return org, self._credentials.issue_org_token(organisation_id)

    def current_assessment(self, org: Organisation, now: int) -> tuple[Assessment, list[dict[str, Any]]]:
        """The reusable assessment if still current; else a fresh one with its log event."""
        if org.assessment is not None and org.assessment.current(now):
            return org.assessment, []
        profile = org.profile
        assessment, event = self.assess(
            org.organisation_id, org.verified, profile.commitments, profile.type, now
        )
        return assessment, [event]

    def verify(self, organisation_id: str, verified: bool, note: str, reviewer: str) -> Organisation:
        """The board verifies an organisation (or withdraws it); it is assessed again at once."""
        note = note.strip()
        if not note or len(note) > limit_of("note"):
            raise InvalidArgument(
                f"note: say what the board checked (1 to {limit_of('note')} characters)",
                code="review.note",
                field="note",
            )
        org = self._governance.get_organisation(organisation_id)
        now = int(time.time())
        assessment, event = self.assess(
            organisation_id, verified, org.profile.commitments, org.profile.type, now
        )
        record = self._log.event(
            VERIFICATION_PATH,
            {"organisation_id": organisation_id, "reviewer": reviewer, "reason": note},
            {"verified": verified, "assessment_decision_id": assessment.decision_id},
            self._policy.revision,
        )
        with self._log.batch(record, event) as log:
            return self._governance.set_verification(organisation_id, verified, note, assessment, log)


def own_organisation(caller_id: str, requested_id: str) -> str:
    if requested_id and requested_id != caller_id:
        raise PermissionDenied("an organisation may see only itself", code="organisation.not_owner")
    return caller_id
