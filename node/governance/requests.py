"""Data requests: validation, the policy's decision, the board's review, grants and revocation."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from coopfed.federation.grants import Constraints, issue_grant
from coopfed.federation.tokens import new_jti
from coopfed.node.errors import FailedPrecondition, InvalidArgument, NotFound
from coopfed.node.governance import catalogue
from coopfed.node.limits import limit_of, truncated
from coopfed.node.model import HALF_HOUR
from coopfed.node.policy import PolicyError
from coopfed.node.storage.records import (
    DataRequestRecord,
    Decision,
    GrantRecord,
    Outcome,
    RequestSpec,
    RequestState,
    Review,
)

if TYPE_CHECKING:
    from coopfed.federation.keys import KeyRing
    from coopfed.node.decisionlog import DecisionLog
    from coopfed.node.governance.organisations import Organisations
    from coopfed.node.policy.consent import ConsentAnswers
    from coopfed.node.policy.holder import PolicyHolder
    from coopfed.node.storage import Store
    from coopfed.node.storage.governance import GovernanceStore

DECISION_PATH = "coopfed/governance/decision"
REVIEW_PATH = "coopfed/governance/review"
GRANT_PATH = "coopfed/governance/grant"
REVOCATION_PATH = "coopfed/governance/revocation"
DAY = 86_400
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_MAX_ITEMS = 16
_MAX_DESCRIPTION = limit_of("purpose_description")
_MAX_REASON = limit_of("reason")


def _names(values: tuple[str, ...], field: str, *, required: bool) -> tuple[str, ...]:
    if required and not values:
        raise InvalidArgument(f"{field}: name at least one", code=f"request.{field}", field=field)
    if len(values) > _MAX_ITEMS:
        raise InvalidArgument(f"{field}: at most {_MAX_ITEMS}", code=f"request.{field}", field=field)
    for i, value in enumerate(values):
        if not _NAME.fullmatch(value):
            raise InvalidArgument(
                f"{field}[{i}]: {truncated(value)!r} is not a name (lower-case letters, digits, '_')",
                code=f"request.{field}",
                field=f"{field}[{i}]",
            )
    if len(set(values)) != len(values):
        raise InvalidArgument(f"{field}: each at most once", code=f"request.{field}", field=field)
    return values


def _reason(text: str) -> str:
    reason = text.strip()
    if not reason or len(reason) > _MAX_REASON:
        raise InvalidArgument(
            f"reason: give the reason in words (1 to {_MAX_REASON} characters)",
            code="review.reason",
            field="reason",
        )
    return reason


class Requests:
    """Third parties' data requests, from submission to the policy's decision, the board's review,
    the grant it issues and its revocation."""

    def __init__(
        self,
        governance: GovernanceStore,
        decision_log: DecisionLog,
        policy: PolicyHolder,
        organisations: Organisations,
        store: Store,
        consent: ConsentAnswers,
        keys: KeyRing,
        node_id: str,
    ) -> None:
        self._governance, self._log, self._policy = governance, decision_log, policy
        self._organisations, self._store, self._consent = organisations, store, consent
        self._keys, self._node_id = keys, node_id  # the ring rotates in place: read at each grant

    def validate(self, spec: RequestSpec) -> RequestSpec:
        """Refuse what is malformed (INVALID_ARGUMENT); what is merely not available is the
        policy's to judge."""
        _names(spec.datasets, "datasets", required=True)
        _names(spec.fields, "fields", required=False)
        commitments = self._policy.data["governance"]["purpose"]["commitments"]
        for i, c in enumerate(spec.commitments):
            if c not in commitments:
                known = ", ".join(sorted(commitments))
                raise InvalidArgument(
                    f"commitments[{i}]: unknown {c!r}; known: {known}",
                    code="request.commitment",
                    field=f"commitments[{i}]",
                )
        _names(spec.commitments, "commitments", required=False)
        start, end = spec.period_start, spec.period_end
        if start < 0 or start % HALF_HOUR or end % HALF_HOUR or start >= end:
            raise InvalidArgument(
                "period: half-hour aligned unix seconds, start before end",
                code="request.period",
                field="period",
            )
        if spec.purpose not in self._policy.data["purposes"]:
            raise InvalidArgument(
                f"purpose: {truncated(spec.purpose)!r} is not in the purpose vocabulary (see ListPurposes)",
                code="request.purpose",
                field="purpose",
            )
        text = spec.purpose_description
        if len(text) > _MAX_DESCRIPTION or any(ord(c) < 32 and c not in "\n\t" for c in text):
            raise InvalidArgument(
                f"purpose_description: at most {_MAX_DESCRIPTION} characters, no control characters",
                code="request.description",
                field="purpose_description",
            )
        return spec

    def _decide(self, policy_input: dict[str, Any]) -> tuple[dict[str, Any], str]:
        revision = self._policy.revision
        result = self._policy.evaluate(DECISION_PATH, policy_input)
        if not isinstance(result, dict) or result.get("outcome") not in {o.value for o in Outcome}:
            raise PolicyError(f"{DECISION_PATH} did not return a decision")  # fail closed
        return result, revision

    def submit(self, organisation_id: str, spec: RequestSpec) -> DataRequestRecord:
        """The policy decides at once; an approval issues a grant. Nothing is stored for bad input."""
        spec = self.validate(spec)
        now = int(time.time())
        org = self._governance.get_organisation(organisation_id)
        assessment, events = self._organisations.current_assessment(org, now)
        policy_input = {
            "request": spec.policy_input(),
            "catalogue": catalogue.policy_facts(
                self._store, self._consent, spec.datasets, spec.flow, spec.purpose
            ),
            "organisation": {"id": organisation_id, "assessment": assessment.policy_input()},
            "now": now,
        }
        result, revision = self._decide(policy_input)
        event = self._log.event(DECISION_PATH, policy_input, result, revision)
        events.append(event)
        request_id = "req-" + uuid.uuid4().hex[:16]
        decision = Decision(event["decision_id"], revision, result, datetime.now(UTC))
        state = {Outcome.APPROVE: RequestState.APPROVED, Outcome.REJECT: RequestState.REJECTED}.get(
            decision.outcome, RequestState.AWAITING_REVIEW
        )
        record = DataRequestRecord(request_id, organisation_id, spec, state, decision.decided_at, decision)
        grant = None
        if decision.outcome is Outcome.APPROVE:
            grant, grant_event = self._grant(record, result, now)
            events.append(grant_event)
        fresh = assessment if assessment.decision_id in {e["decision_id"] for e in events} else None
        with self._log.batch(*events) as log:
            self._governance.create_request(record, grant, fresh, log)
        return self._governance.get_request(request_id)

    def _grant(
        self, record: DataRequestRecord, result: Mapping[str, Any], now: int
    ) -> tuple[GrantRecord, dict[str, Any]]:
        """Sign the grant for an approved request (EdDSA JWT); returns it and its log event."""
        terms = result["grant"]
        ttl = int(terms["ttl_days"]) * DAY
        constraints = Constraints(min_group_size=int(terms["min_group_size"]))
        jti = new_jti()
        token = issue_grant(
            self._keys,
            issuer=self._node_id,
            subject=record.organisation_id,
            audience=self._node_id,
            scope=record.spec.scope(),
            constraints=constraints,
            ttl=ttl,
            now=now,
            jti=jti,
        )
        grant = GrantRecord(
            jti, record.request_id, record.organisation_id, token, now, now + ttl, record.spec.scope(),
            constraints.min_group_size,
        )  # fmt: skip
        event = self._log.event(
            GRANT_PATH,
            {"request_id": record.request_id, "decision_id": record.decision.decision_id},
            {
                "grant_id": jti,
                "expires_at": now + ttl,
                "scope": grant.scope.to_claim(),
                **constraints.to_claim(),
            },
            self._policy.revision,
        )
        return grant, event

    def get_own(self, organisation_id: str, request_id: str) -> DataRequestRecord:
        record = self._governance.get_request(request_id)
        if record.organisation_id != organisation_id:
            # the same answer as a request that does not exist: ids of others are not disclosed
            raise NotFound(f"no request {request_id!r}", code="request.not_found")
        return record

    def review(self, request_id: str, reviewer: str, outcome: Outcome, reason: str) -> DataRequestRecord:
        """A board member decides a referred request; approval issues a grant."""
        reason = _reason(reason)
        if outcome not in (Outcome.APPROVE, Outcome.REJECT):
            raise InvalidArgument("outcome: approve or reject", code="review.outcome", field="outcome")
        record = self._governance.get_request(request_id)
        if record.state is not RequestState.AWAITING_REVIEW:
            raise FailedPrecondition(
                f"request {request_id} is {record.state.value}, not awaiting review",
                code="review.not_awaiting",
            )
        if outcome is Outcome.APPROVE and not record.decision.data_available:
            raise FailedPrecondition(
                "the data asked for is not available: "
                + " ".join(record.decision.result["stages"]["requirement"]["reasons"]),
                code="review.data_unavailable",
            )
        now = int(time.time())
        proposed = record.decision.proposed
        event = self._log.event(
            REVIEW_PATH,
            {
                "request_id": request_id,
                "policy_decision_id": record.decision.decision_id,
                "proposed": proposed.value,
                "reviewer": reviewer,
                "reason": reason,
            },
            {"outcome": outcome.value, "agreed": None if proposed is Outcome.REFER else outcome is proposed},
            self._policy.revision,
        )
        decision = Review(event["decision_id"], reviewer, outcome, reason, proposed, datetime.now(UTC))
        events = [event]
        grant = None
        if outcome is Outcome.APPROVE:
            grant, grant_event = self._grant(record, record.decision.result, now)
            events.append(grant_event)
        with self._log.batch(*events) as log:
            self._governance.record_review(request_id, decision, grant, log)
        return self._governance.get_request(request_id)

    def revoke(self, grant_id: str, reason: str, reviewer: str) -> GrantRecord:
        """Revoke a grant before it expires; the grantee reads the reason. Revoking twice changes nothing."""
        reason = _reason(reason)
        grant = self._governance.get_grant(grant_id)
        if grant.revoked:
            return grant
        event = self._log.event(
            REVOCATION_PATH,
            {"grant_id": grant_id, "request_id": grant.request_id, "reviewer": reviewer, "reason": reason},
            {"revoked": True},
            self._policy.revision,
        )
        with self._log.batch(event) as log:
            return self._governance.revoke_grant(grant_id, reason, reviewer, datetime.now(UTC), log)
