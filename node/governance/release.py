"""Releasing data under a grant: scope, consent at release time, k-suppression, the access log."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from coopfed.federation import errors as token_errors
from coopfed.federation.grants import Grant, Granularity, verify_grant
from coopfed.node.auth import HOLDER_HEADER, Principal
from coopfed.node.credentials import verify_access
from coopfed.node.errors import InvalidArgument, Unauthenticated
from coopfed.node.governance.model import AccessEntry, GrantRecord
from coopfed.node.governance.organisations import ORG_ROLE
from coopfed.node.model import HALF_HOUR
from coopfed.node.storage import NotFound

if TYPE_CHECKING:
    from coopfed.node.runtime import Node

RELEASE_PATH = "coopfed/governance/release"
MEMBER_BATCH = 20  # members whose data is read, logged, then sent together


class Revocations(Container[str]):
    """The node's revoked grants, read from storage at every check (so a revocation is seen at once)."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def __contains__(self, jti: object) -> bool:
        return isinstance(jti, str) and self._node.governance.revocation(jti) is not None

    def reason_for(self, jti: str) -> str:
        return self._node.governance.revocation(jti) or ""


def authenticate_grant(node: Node, token: str) -> Principal:
    """A grant this node issued, verified (EdDSA only, every claim, not revoked) and on record."""
    grant = verify_grant(
        token, trust=node.own_trust(), audience=node.node_id, issuer=node.node_id, revoked=Revocations(node)
    )
    try:
        record = node.governance.get_grant(grant.jti)
    except NotFound:
        raise Unauthenticated("this node holds no record of the grant", code="grant.unknown") from None
    if record.organisation_id != grant.subject:
        raise Unauthenticated("the grant does not match the node's record", code="grant.mismatch")
    return Principal("grantee", grant.subject, {"grant": grant})


def check_holder(node: Node, grant: Grant, metadata: Sequence[tuple[str, str | bytes]] | None) -> None:
    """A grant works only beside a valid, unrevoked token of the organisation it was issued to,
    so a grant copied out of a log or a shared folder is useless on its own."""
    token = next((str(value) for key, value in metadata or () if key == HOLDER_HEADER), "")
    if not token:
        raise Unauthenticated(
            f"a grant is used together with its organisation's token (metadata {HOLDER_HEADER})",
            code="grant.holder",
        )
    holder = verify_access(node, token, ORG_ROLE)
    if holder.subject != grant.subject:
        raise Unauthenticated("this grant was issued to another organisation", code="grant.holder")


@dataclass(frozen=True)
class FetchSpec:
    """What a FetchData call asks for; empty means everything the grant allows."""

    datasets: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    granularity: Granularity | None = None
    period: tuple[int, int] | None = None


@dataclass(frozen=True)
class Plan:
    release_id: str
    decision_id: str
    record: GrantRecord
    request_decision_id: str
    datasets: tuple[str, ...]
    fields: tuple[str, ...]
    granularity: Granularity
    period: tuple[int, int]
    flow: str
    purpose: str
    min_group_size: int
    allowed: dict[str, dict[str, str]]  # dataset -> consenting profile -> consent decision id


def plan(node: Node, grant: Grant, fetch: FetchSpec) -> Plan:
    """Check the call against the grant's scope (PERMISSION_DENIED beyond it), evaluate consent once
    per profile, and log the release before any data leaves."""
    scope = grant.scope
    granularity = fetch.granularity or scope.granularity
    offered = node.policy_data["governance"]["fields"]
    fields = fetch.fields or tuple(f for f in sorted(scope.fields) if _offered(offered, f, granularity))
    datasets = fetch.datasets or tuple(sorted(scope.datasets))
    if len(set(datasets)) != len(datasets) or len(set(fields)) != len(fields):
        raise InvalidArgument("datasets and fields: each at most once", code="fetch.duplicate")
    start, end = fetch.period or (scope.period_start, scope.period_end)
    if start % HALF_HOUR or end % HALF_HOUR or start >= end:
        raise InvalidArgument(
            "period: half-hour aligned, start before end", code="fetch.period", field="period"
        )
    grant.check(
        datasets=datasets, period_start=start, period_end=end, flow=scope.flow, purpose=scope.purpose,
        granularity=granularity, fields=fields,
    )  # fmt: skip
    for f in fields:  # within the grant, but not every field exists at a coarser granularity
        if not _offered(offered, f, granularity):
            raise InvalidArgument(
                f"fields: {f!r} is not offered in {granularity.value} data", code="fetch.field"
            )
    record = node.governance.get_grant(grant.jti)
    request = node.governance.get_request(record.request_id)
    profiles = node.store.profiles()
    allowed: dict[str, dict[str, str]] = {}
    for ds in datasets:
        allowed[ds] = {}
        for p in profiles:
            decision, decision_id = node.consent_logged(
                p.settings.policy_input(), ds, scope.flow, scope.purpose
            )
            if decision.allowed:
                allowed[ds][p.profile_id] = decision_id
    # the grant's k, or the co-op's current k if the board has raised it since
    k = max(grant.constraints.min_group_size, int(node.policy_data["coop"]["k_min"]))
    release_id = "rel-" + uuid.uuid4().hex[:16]
    event = node.decision_log.event(
        RELEASE_PATH,
        {
            "release_id": release_id, "grant_id": grant.jti, "request_id": record.request_id,
            "datasets": list(datasets), "fields": list(fields), "granularity": granularity.value,
            "period": {"start": start, "end": end}, "flow": scope.flow, "purpose": scope.purpose,
        },
        {"consenting_profiles": allowed, "min_group_size": k},
        node.policy.revision,
    )  # fmt: skip
    node.decision_log.append(event)  # with the consent decisions it relies on, before data leaves
    node.metrics.released(scope.flow)
    return Plan(
        release_id, event["decision_id"], record, request.decision.decision_id, datasets, fields, granularity,
        (start, end), scope.flow, scope.purpose, k, allowed,
    )  # fmt: skip


def _offered(offered: dict[str, Any], name: str, granularity: Granularity) -> bool:
    return name in offered and granularity.value in offered[name]["granularities"]


def check_live(node: Node, grant: Grant) -> None:
    """Before every message: a grant revoked or expired since the call began stops the stream."""
    reason = node.governance.revocation(grant.jti)
    if reason is not None:
        raise token_errors.Revoked(reason)
    if grant.expires_at <= int(time.time()):
        raise token_errors.Expired("token has expired")


def _runs(periods: np.ndarray) -> list[tuple[int, int]]:
    """Maximal [start, end) runs of consecutive half-hours."""
    if periods.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(periods) != HALF_HOUR) + 1
    return [(int(run[0]), int(run[-1]) + HALF_HOUR) for run in np.split(periods, breaks)]


def _entry(plan: Plan, dataset: str, consent_id: str) -> AccessEntry:
    return AccessEntry(
        at=datetime.now(UTC), release_id=plan.release_id, grant_id=plan.record.grant_id,
        request_id=plan.record.request_id, organisation_id=plan.record.organisation_id, organisation_name="",
        purpose=plan.purpose, flow=plan.flow, dataset=dataset, granularity=plan.granularity.value,
        period_start=plan.period[0], period_end=plan.period[1], decision_id=plan.request_decision_id,
        consent_decision_id=consent_id,
    )  # fmt: skip


@dataclass
class Tally:
    members: set[str]
    suppressed: int = 0
    released: int = 0


def aggregate(node: Node, plan: Plan, dataset: str, tally: Tally) -> dict[str, Any]:
    """Half-hourly totals over consenting profiles; cells under k members are withheld."""
    profiles = plan.allowed[dataset]
    totals = node.store.profile_totals(list(profiles), dataset, *plan.period)
    keep = totals.member_count >= plan.min_group_size
    periods = totals.period_start[keep]
    tally.suppressed += int((~keep).sum())
    tally.released += int(keep.sum())
    contributors = node.governance.contributors(list(profiles), dataset, _runs(periods))
    rows = [(member, _entry(plan, dataset, profiles[profile])) for member, profile in contributors]
    node.governance.record_access(rows)  # logged before the data is sent
    tally.members.update(member for member, _ in contributors)
    return {
        "dataset": dataset,
        "periods": periods,
        "kwh": totals.kwh_sum[keep] if "kwh" in plan.fields else None,
        "member_count": totals.member_count[keep] if "member_count" in plan.fields else None,
    }


def individual(
    node: Node, plan: Plan, dataset: str, ref_key: bytes, tally: Tally
) -> Iterator[dict[str, Any]]:
    """One series per consenting member; each member's consent is re-checked just before release."""
    profiles = plan.allowed[dataset]
    members = [m for ms in node.governance.members_of_profiles(list(profiles)).values() for m in ms]
    for i in range(0, len(members), MEMBER_BATCH):
        batch = _still_consenting(node, members[i : i + MEMBER_BATCH], profiles)
        data = {m: list(node.store.iter_readings(m, dataset, *plan.period)) for m in batch}
        sending = [m for m in batch if any(chunk.periods.size for chunk in data[m])]
        rows = [(m, _entry(plan, dataset, profiles[batch[m]])) for m in sending]
        pseudonyms = node.governance.record_access(rows)  # leaves out anyone erased meanwhile
        sending = [m for m in sending if m in pseudonyms]
        tally.members.update(sending)
        for m in sending:
            ref = (
                _member_ref(ref_key, plan.record.grant_id, pseudonyms[m])
                if "member_ref" in plan.fields
                else ""
            )
            for chunk in data[m]:
                yield {"dataset": dataset, "member_ref": ref, "periods": chunk.periods, "kwh": chunk.kwh}


def _still_consenting(node: Node, members: Sequence[str], profiles: dict[str, str]) -> dict[str, str]:
    """Members whose current profile still allows the release (consent may change mid-stream)."""
    current = node.governance.member_profiles(members)
    return {m: current[m] for m in members if current.get(m) in profiles}


def _member_ref(key: bytes, grant_id: str, pseudonym: str) -> str:
    """A pseudonym for one member within one grant: another grant cannot link the two."""
    mac = hmac.new(key, f"{grant_id}:{pseudonym}".encode(), hashlib.sha256).hexdigest()
    return "m-" + mac[:20]
