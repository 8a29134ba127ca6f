"""Releasing data to a third party under a grant: its scope and fields, then the release pipeline."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coopfed.federation.grants import Grant, Granularity, verify_grant
from coopfed.node.auth import HOLDER_HEADER, Principal
from coopfed.node.credentials import ORG_ROLE
from coopfed.node.errors import InvalidArgument, Unauthenticated
from coopfed.node.model import HALF_HOUR
from coopfed.node.release import pipeline
from coopfed.node.release.pipeline import Release, ReleasePipeline
from coopfed.node.storage import NotFound
from coopfed.node.storage.governance import GrantKind

if TYPE_CHECKING:
    from coopfed.node.credentials import Credentials
    from coopfed.node.decisionlog import DecisionLog
    from coopfed.node.policy.holder import PolicyHolder
    from coopfed.node.storage import Store
    from coopfed.node.storage.governance import GovernanceStore

RELEASE_PATH = "coopfed/governance/release"
MEMBER_BATCH = 20  # members whose data is read, logged, then sent together


class Revocations(Container[str]):
    """The node's revoked grants, read from storage at every check (so a revocation is seen at once)."""

    def __init__(self, governance: GovernanceStore) -> None:
        self._governance = governance

    def __contains__(self, jti: object) -> bool:
        return isinstance(jti, str) and self._governance.revocation(jti) is not None

    def reason_for(self, jti: str) -> str | None:
        return self._governance.revocation(jti)


def authenticate_grant(credentials: Credentials, governance: GovernanceStore, token: str) -> Principal:
    """A grant this node issued, verified (EdDSA only, every claim, not revoked) and on record."""
    grant = verify_grant(
        token,
        trust=credentials.own_trust(),
        audience=credentials.node_id,
        issuer=credentials.node_id,
        revoked=Revocations(governance),
    )
    try:
        record = governance.get_grant(grant.jti)
    except NotFound:
        raise Unauthenticated("this node holds no record of the grant", code="grant.unknown") from None
    if record.organisation_id != grant.subject:
        raise Unauthenticated("the grant does not match the node's record", code="grant.mismatch")
    return Principal("grantee", grant.subject, {"grant": grant})


def check_holder(
    credentials: Credentials, grant: Grant, metadata: Sequence[tuple[str, str | bytes]] | None
) -> None:
    """A grant works only beside a valid, unrevoked token of the organisation it was issued to,
    so a grant copied out of a log or a shared folder is useless on its own."""
    token = next((str(value) for key, value in metadata or () if key == HOLDER_HEADER), "")
    if not token:
        raise Unauthenticated(
            f"a grant is used together with its organisation's token (metadata {HOLDER_HEADER})",
            code="grant.holder",
        )
    holder = credentials.verify(token, ORG_ROLE)
    if holder.subject != grant.subject:
        raise Unauthenticated("this grant was issued to another organisation", code="grant.holder")


@dataclass(frozen=True)
class FetchSpec:
    """What a FetchData call asks for; empty means everything the grant allows."""

    datasets: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    granularity: Granularity | None = None
    period: tuple[int, int] | None = None


@dataclass
class Tally:
    """What a release sent, for its summary."""

    counted: int = 0  # aggregates: the members the store counted when their cells were logged
    sent: set[str] = field(default_factory=set)  # individual series: the members whose series went
    suppressed: int = 0
    released: int = 0

    @property
    def members(self) -> int:
        return self.counted + len(self.sent)  # a release is one or the other


class Releases:
    """Data released to a third party under a verified grant: the release planned and recorded by
    the release pipeline, then each message's data, the grant re-checked as it goes."""

    def __init__(
        self,
        governance: GovernanceStore,
        store: Store,
        policy: PolicyHolder,
        decision_log: DecisionLog,
        pipeline: ReleasePipeline,
    ) -> None:
        self._governance, self._store, self._policy = governance, store, policy
        self._pipeline = pipeline
        self._revocations = Revocations(governance)
        self._ref_key = decision_log.masker.derive(b"member-ref")

    def plan(self, grant: Grant, fetch: FetchSpec) -> Release:
        """Check the call against the grant's scope (PERMISSION_DENIED beyond it), then plan and
        record the release in the release pipeline before any data leaves."""
        scope = grant.scope
        granularity = fetch.granularity or scope.granularity
        offered = self._policy.data["governance"]["fields"]
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
        record = self._governance.get_grant(grant.jti)
        request = self._governance.get_request(record.request_id)
        ask = pipeline.Ask(
            scope.flow, scope.purpose, datasets, (start, end), fields, granularity.value,
            grant.constraints.min_group_size, grant.constraints.noise,
        )  # fmt: skip
        to = pipeline.Recipient(
            GrantKind.GOVERNANCE,
            grant.jti,
            request_id=record.request_id,
            decision_id=request.decision.decision_id,
        )
        release = self._pipeline.plan(ask, to, grant)
        question = {"grant_id": grant.jti, "request_id": record.request_id, "fields": list(fields)}
        return self._pipeline.record(release, RELEASE_PATH, question | {"granularity": granularity.value})

    def check_live(self, grant: Grant) -> None:
        """Before every message: a grant revoked or expired since the call began stops the stream."""
        pipeline.check_live(grant, self._revocations)

    def aggregates(self, release: Release, tally: Tally) -> list[pipeline.Cells]:
        """Each dataset's half-hourly totals over consenting profiles, cells under k members
        withheld; all of them logged before the first is sent."""
        cells = [self._pipeline.cells(release, dataset) for dataset in release.datasets]
        tally.suppressed += sum(c.suppressed.size for c in cells)
        tally.released += sum(c.periods.size for c in cells)
        tally.counted = self._pipeline.log_access(release, cells)
        return cells

    def individual(self, release: Release, dataset: str, tally: Tally) -> Iterator[dict[str, Any]]:
        """One series per consenting member; each member's consent is re-checked just before release."""
        profiles = release.consent_ids[dataset]
        members = [m for ms in self._governance.members_of_profiles(list(profiles)).values() for m in ms]
        for i in range(0, len(members), MEMBER_BATCH):
            batch = self._still_consenting(members[i : i + MEMBER_BATCH], profiles)
            data = {m: list(self._store.iter_readings(m, dataset, *release.period)) for m in batch}
            sending = {m: batch[m] for m in batch if any(chunk.periods.size for chunk in data[m])}
            pseudonyms = self._pipeline.log_members(release, dataset, sending)  # leaves out the erased
            tally.sent.update(pseudonyms)
            for m in (m for m in sending if m in pseudonyms):
                ref = (
                    _member_ref(self._ref_key, release.recipient.grant_id, pseudonyms[m])
                    if "member_ref" in release.ask.fields
                    else ""
                )
                for chunk in data[m]:
                    yield {"dataset": dataset, "member_ref": ref, "periods": chunk.periods, "kwh": chunk.kwh}

    def _still_consenting(self, members: Sequence[str], profiles: Mapping[str, str]) -> dict[str, str]:
        """Members whose current profile still allows the release (consent may change mid-stream)."""
        current = self._governance.member_profiles(members)
        return {m: current[m] for m in members if current.get(m) in profiles}


def _offered(offered: dict[str, Any], name: str, granularity: Granularity) -> bool:
    return name in offered and granularity.value in offered[name]["granularities"]


def _member_ref(key: bytes, grant_id: str, pseudonym: str) -> str:
    """A pseudonym for one member within one grant: another grant cannot link the two."""
    mac = hmac.new(key, f"{grant_id}:{pseudonym}".encode(), hashlib.sha256).hexdigest()
    return "m-" + mac[:20]
