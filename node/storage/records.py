"""Governance records the store keeps: organisations, assessments, data requests, decisions, grants,
accesses and token revocations. Below every feature, so storage and features share them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from coopfed.federation.grants import GrantScope, Granularity


class Outcome(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    REFER = "refer"


class RequestState(StrEnum):
    AWAITING_REVIEW = "awaiting_review"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class OrganisationProfile:
    """What an organisation says about itself when it registers."""

    name: str
    type: str
    registration_number: str = ""
    website: str = ""
    contact: str = ""
    commitments: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Assessment:
    """The organisation policy's assessment (stage 2) and the decision-log entry that holds it."""

    decision_id: str
    revision: str
    result: Mapping[str, Any]

    @property
    def score(self) -> int:
        return int(self.result["score"])

    @property
    def assessed_at(self) -> int:
        return int(self.result["assessed_at"])

    @property
    def expires_at(self) -> int:
        return int(self.result["expires_at"])

    @property
    def reusable(self) -> bool:
        return self.result.get("reusable") is True

    def current(self, now: int) -> bool:
        """Whether a later request may reuse it instead of assessing the organisation again."""
        return self.reusable and self.expires_at > now

    def policy_input(self) -> dict[str, Any]:
        keys = ("score", "verified", "expires_at", "dimensions", "reasons")
        return {k: self.result.get(k) for k in keys}


@dataclass(frozen=True)
class Organisation:
    organisation_id: str
    profile: OrganisationProfile
    registered_at: datetime
    verified: bool = False
    verification_note: str = ""
    assessment: Assessment | None = None


@dataclass(frozen=True)
class RequestSpec:
    """A well-formed data request: what, at which granularity, over which period, why."""

    datasets: tuple[str, ...]
    fields: tuple[str, ...]
    granularity: Granularity
    period_start: int
    period_end: int
    flow: str
    purpose: str
    purpose_description: str = ""
    commitments: tuple[str, ...] = ()

    def policy_input(self) -> dict[str, Any]:
        return {
            "datasets": list(self.datasets),
            "fields": list(self.fields),
            "granularity": self.granularity.value,
            "period": {"start": self.period_start, "end": self.period_end},
            "flow": self.flow,
            "purpose": {"code": self.purpose, "description": self.purpose_description},
            "commitments": list(self.commitments),
        }

    def to_json(self) -> str:
        return json.dumps(self.policy_input(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RequestSpec:
        raw = json.loads(text)
        return cls(
            datasets=tuple(raw["datasets"]),
            fields=tuple(raw["fields"]),
            granularity=Granularity(raw["granularity"]),
            period_start=raw["period"]["start"],
            period_end=raw["period"]["end"],
            flow=raw["flow"],
            purpose=raw["purpose"]["code"],
            purpose_description=raw["purpose"]["description"],
            commitments=tuple(raw["commitments"]),
        )

    def scope(self) -> GrantScope:
        return GrantScope(
            datasets=frozenset(self.datasets),
            fields=frozenset(self.fields),
            granularity=self.granularity,
            period_start=self.period_start,
            period_end=self.period_end,
            purpose=self.purpose,
            flow=self.flow,
        )


@dataclass(frozen=True)
class Decision:
    """The governance policy's decision on a request, as it returned it."""

    decision_id: str
    revision: str
    result: Mapping[str, Any]
    decided_at: datetime

    @property
    def outcome(self) -> Outcome:
        return Outcome(self.result["outcome"])

    @property
    def proposed(self) -> Outcome:
        return Outcome(self.result["proposed"])

    @property
    def data_available(self) -> bool:
        return self.result["stages"]["requirement"]["passed"] is True


@dataclass(frozen=True)
class Review:
    """A board member's decision on a referred request."""

    decision_id: str
    reviewer: str
    outcome: Outcome
    reason: str
    proposed: Outcome  # what the policy computed (its proposal in shadow mode)
    decided_at: datetime

    @property
    def agreed(self) -> bool | None:
        """Whether the board agreed with the policy; None where the policy itself referred."""
        return None if self.proposed is Outcome.REFER else self.outcome is self.proposed


@dataclass(frozen=True)
class GrantRecord:
    grant_id: str  # the JWT's jti
    request_id: str
    organisation_id: str
    token: str
    issued_at: int
    expires_at: int
    scope: GrantScope
    min_group_size: int
    revoked_at: datetime | None = None
    revocation_reason: str = ""

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class DataRequestRecord:
    request_id: str
    organisation_id: str
    spec: RequestSpec
    state: RequestState
    submitted_at: datetime
    decision: Decision
    review: Review | None = None
    grant: GrantRecord | None = None


@dataclass(frozen=True)
class DecisionFilter:
    decided_by: str = ""  # "policy", "board" or "" for both
    outcome: Outcome | None = None
    organisation_id: str = ""
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    after: tuple[datetime, str, str] | None = None  # (decided_at, decided_by, request_id) of the last seen


@dataclass(frozen=True)
class AccessEntry:
    """One release of one member's data, as the member sees it."""

    at: datetime
    release_id: str
    grant_id: str
    request_id: str
    organisation_id: str
    organisation_name: str
    purpose: str
    flow: str
    dataset: str
    granularity: str
    period_start: int
    period_end: int
    decision_id: str
    consent_decision_id: str
    key: int = 0  # its place in the access log, once stored (newest highest)


@dataclass(frozen=True)
class TokenRevocation:
    """One token (`jti`), or every token of `subject` issued before `issued_before` (unix s)."""

    reason: str
    revoked_by: str
    revoked_at: datetime
    jti: str = ""
    subject: str = ""
    issued_before: int = 0
