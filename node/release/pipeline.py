"""The one release pipeline: every flow that lets data leave a member's own account runs through it.

`plan` asks the consent policy once per consent profile at release time (admitted members only)
and sets k; `record` puts the release in the decision log, durably, before anything leaves (its
decision_id names the release); `cells` sums the consenting profiles' running totals, withholds
cells under k and adds the noise asked for; `log_access` writes the access log, an entry per
consenting profile and dataset with its released spans (a member sees it when a reading of theirs
lies in a released cell);
`check_live` asks one revocation interface whether the grant still holds. Cost is
O(periods x profiles): no reading is touched to release an aggregate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from coopfed.federation import errors as token_errors
from coopfed.federation.grants import Grant, Noise
from coopfed.node.decisionlog import DecisionLog
from coopfed.node.errors import FailedPrecondition
from coopfed.node.metrics import Metrics
from coopfed.node.model import HALF_HOUR, ConsentSettings
from coopfed.node.policy.consent import ConsentAnswers, ConsentDecision
from coopfed.node.policy.holder import PolicyHolder
from coopfed.node.release.noise import add_noise
from coopfed.node.release.privacy import private_cells
from coopfed.node.storage import Capacity, PeriodTotals, Store
from coopfed.node.storage.governance import GovernanceStore, GrantKind
from coopfed.node.storage.records import AccessEntry

_EMPTY = PeriodTotals(np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64))


class Revocations(Protocol):
    """Where a grant's revocation is looked up, afresh at every call (so it is seen at once)."""

    def reason_for(self, jti: str) -> str | None: ...


@dataclass(frozen=True)
class Ask:
    """What leaves: the flow and purpose the consent policy decides on, and the cells asked for."""

    flow: str
    purpose: str
    datasets: tuple[str, ...]
    period: tuple[int, int]
    fields: tuple[str, ...] = ("kwh", "member_count")
    granularity: str = "aggregate"
    min_group_size: int = 1  # the grant's k; the co-op's current k is the floor
    noise: Noise | None = None  # a grant's noise on the kWh totals
    epsilon: float | None = None  # differential privacy for the whole release, charged to every member


@dataclass(frozen=True)
class Recipient:
    """Who receives it, as the member's access log names them."""

    kind: GrantKind
    grant_id: str  # the grant, or the publication or comparison, the entries are filed under
    id: str = ""  # a peer's or the public's id; "" where the grant names its organisation
    name: str = ""
    request_id: str = ""
    decision_id: str = ""  # the decision that let the recipient have it (the grant's)


@dataclass(frozen=True)
class Release:
    """One release, decided before any data is read."""

    ask: Ask
    recipient: Recipient
    min_group_size: int
    profiles_total: int
    consent_ids: dict[str, dict[str, str]]  # dataset -> consenting profile -> consent decision id
    grant: Grant | None = None
    decision_id: str = ""  # of the release's decision-log entry, once recorded; it names the release

    @property
    def release_id(self) -> str:
        return self.decision_id

    @property
    def datasets(self) -> tuple[str, ...]:
        return self.ask.datasets

    @property
    def period(self) -> tuple[int, int]:
        return self.ask.period

    @property
    def consenting(self) -> dict[str, list[str]]:
        """Dataset -> profile ids whose consent allows the release."""
        return {ds: list(ids) for ds, ids in self.consent_ids.items()}

    @property
    def profiles_included(self) -> int:
        return len({p for ids in self.consent_ids.values() for p in ids})


@dataclass(frozen=True)
class Cells:
    """One dataset's released cells, in period order; `suppressed` holds the withheld periods."""

    dataset: str
    periods: np.ndarray
    kwh: np.ndarray | None  # None where the field was not asked for
    member_count: np.ndarray | None
    suppressed: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    def chunks(self, size: int) -> Iterator[Cells]:
        """The cells in pieces of at most `size` released periods (suppressed ones ride along)."""
        if self.periods.size <= size:
            yield self
            return
        for start in range(0, self.periods.size, size):
            end = min(start + size, self.periods.size)
            lo = self.periods[start] if start else np.iinfo(np.int64).min
            hi = self.periods[end] if end < self.periods.size else np.iinfo(np.int64).max
            part = slice(start, end)
            yield Cells(
                self.dataset,
                self.periods[part],
                None if self.kwh is None else self.kwh[part],
                None if self.member_count is None else self.member_count[part],
                self.suppressed[(self.suppressed >= lo) & (self.suppressed < hi)],
            )


Contributes = Callable[[dict[str, Any], str, ConsentDecision, str], str | None]
"""A flow's own policy on top of consent: (profile, dataset, consent decision, its decision id)
-> the id of the decision that lets the profile contribute, or None."""


class ReleasePipeline:
    """The pipeline's steps over one node's store, consent, policy and logs. It holds no
    per-request state: the node builds one and every flow that releases data shares it."""

    def __init__(
        self,
        *,
        store: Store,
        governance: GovernanceStore,
        policy: PolicyHolder,
        decision_log: DecisionLog,
        consent: ConsentAnswers,
        metrics: Metrics,
    ) -> None:
        self.store, self.governance, self.policy = store, governance, policy
        self.decision_log, self.consent, self.metrics = decision_log, consent, metrics

    # --- admission: only admitted members count toward k or appear in any release -------------

    def eligible_profiles(self) -> dict[str, ConsentSettings]:
        """The consent profiles whose members may be released. Admission hooks in here: the
        store's profile, member and totals queries count admitted members only (`admitted_only=True`)."""
        return self.store.profiles_in_use()

    def eligible_totals(
        self, profile_ids: Sequence[str], dataset: str, period: tuple[int, int]
    ) -> PeriodTotals:
        """Running totals of the eligible members of `profile_ids` (see `eligible_profiles`)."""
        return self.store.profile_totals(profile_ids, dataset, *period) if profile_ids else _EMPTY

    def declared_capacity(self, profile_ids: Sequence[str], k: int) -> Capacity | None:
        """Solar and wind kW declared by the eligible members of `profile_ids`; None unless at least
        k of them declared some (a total of fewer would describe someone's home)."""
        got = self.store.capacity(profile_ids) if profile_ids else None
        return got if got is not None and got.members >= max(k, 1) else None

    # --- the pipeline --------------------------------------------------------------------------

    def plan(
        self,
        ask: Ask,
        recipient: Recipient,
        grant: Grant | None = None,
        *,
        contributes: Contributes | None = None,
    ) -> Release:
        """Consent once per profile and dataset at release time, and the k this release keeps."""
        profiles = self.eligible_profiles()
        consent_ids: dict[str, dict[str, str]] = {}
        for ds in ask.datasets:
            consent_ids[ds] = {}
            for profile_id, settings in profiles.items():
                profile = settings.policy_input()
                decision, decision_id = self.consent.logged(profile, ds, ask.flow, ask.purpose)
                allowed_by = decision_id if decision.allowed else None
                if contributes is not None:
                    allowed_by = contributes(profile, ds, decision, decision_id)
                if allowed_by is not None:
                    consent_ids[ds][profile_id] = allowed_by
        # the grant's k, or the co-op's current k if the board has raised it since
        k = max(ask.min_group_size, int(self.policy.data["coop"]["k_min"]))
        return Release(ask, recipient, k, len(profiles), consent_ids, grant)

    def record(self, release: Release, path: str, question: Mapping[str, Any]) -> Release:
        """The release's decision-log entry, durable (with the consent decisions it relies on)
        before any data leaves."""
        ask = release.ask
        question = {
            **question, "datasets": list(ask.datasets),
            "period": {"start": ask.period[0], "end": ask.period[1]},
            "flow": ask.flow, "purpose": ask.purpose,
        }  # fmt: skip
        noise = {"mechanism": ask.noise.mechanism.value, "epsilon": ask.noise.epsilon} if ask.noise else None
        if ask.epsilon is not None:
            self._charge(release, ask.epsilon)
            noise = {"mechanism": "laplace", "epsilon": ask.epsilon, "unit": "the whole release, per member"}
        answer = {
            "consenting_profiles": release.consent_ids,
            "min_group_size": release.min_group_size,
            "noise": noise,
        }
        event = self.decision_log.event(path, question, answer, self.policy.revision)
        self.decision_log.append(event)
        self.metrics.released(ask.flow)
        return replace(release, decision_id=str(event["decision_id"]))

    def cells(self, release: Release, dataset: str) -> Cells:
        """Totals over the consenting profiles; cells with fewer than k members are withheld."""
        totals = self.eligible_totals(list(release.consent_ids[dataset]), dataset, release.period)
        keep = totals.member_count >= release.min_group_size
        fields, noise = release.ask.fields, release.ask.noise
        bound = float(self.policy.data["federation"]["noise"]["sensitivity_kwh"])
        if release.ask.epsilon is not None:  # k is applied to the noisy counts: the true ones stay hidden
            kwh_all, counts = private_cells(totals.kwh_sum, totals.member_count, release.ask.epsilon, bound)
            keep = counts >= release.min_group_size
            totals = PeriodTotals(totals.period_start, kwh_all, counts)
        kwh = totals.kwh_sum[keep] if "kwh" in fields else None
        if kwh is not None and noise is not None:
            kwh = add_noise(kwh, noise, bound)
        return Cells(
            dataset,
            totals.period_start[keep],
            kwh,
            totals.member_count[keep] if "member_count" in fields else None,
            totals.period_start[~keep],
        )

    def _charge(self, release: Release, epsilon: float) -> None:
        """Charge every member whose data the private release could hold; refuse past the budget."""
        profiles = sorted({p for ids in release.consent_ids.values() for p in ids})
        members = [m for ms in self.governance.members_of_profiles(profiles).values() for m in ms]
        budget = float(self.policy.data["privacy"]["epsilon_per_member_per_year"])
        year = datetime.now(UTC).year
        over = self.store.charge_privacy(members, year, epsilon, budget)
        if over:
            raise FailedPrecondition(
                f"this release would take {len(over)} members past their privacy budget for {year} "
                f"(epsilon {budget:g} a year): publish less often, or with a smaller epsilon",
                code="release.budget_spent",
            )

    def log_access(self, release: Release, released: Sequence[Cells]) -> int:
        """Before any data leaves: an entry per consenting profile and dataset with the spans
        released, in one transaction. Returns how many members hold a reading in a released cell."""
        entries: list[tuple[str, AccessEntry, list[tuple[int, int]]]] = []
        spans: dict[str, tuple[list[str], list[tuple[int, int]]]] = {}
        for part in released:
            if part.periods.size == 0:
                continue  # nothing of anyone's is released
            profiles, runs = release.consent_ids[part.dataset], _runs(part.periods)
            entries += [(p, entry(release, part.dataset, cid), runs) for p, cid in profiles.items()]
            spans[part.dataset] = (list(profiles), runs)
        if not entries:
            return 0
        self.governance.record_release_access(entries, release.recipient.kind)
        return self.governance.count_contributors(spans)

    def log_members(self, release: Release, dataset: str, members: Mapping[str, str]) -> dict[str, str]:
        """Individual data: an entry for each member (id -> profile) about to be sent; returns their
        pseudonyms, leaving out anyone erased meanwhile."""
        consent = release.consent_ids[dataset]
        rows = [(m, entry(release, dataset, consent[p])) for m, p in members.items()]
        return self.governance.record_access(rows, release.recipient.kind)


def entry(release: Release, dataset: str, consent_id: str) -> AccessEntry:
    to, ask = release.recipient, release.ask
    return AccessEntry(
        at=datetime.now(UTC), release_id=release.release_id, grant_id=to.grant_id, request_id=to.request_id,
        organisation_id=to.id, organisation_name=to.name, purpose=ask.purpose, flow=ask.flow, dataset=dataset,
        granularity=ask.granularity, period_start=ask.period[0], period_end=ask.period[1],
        decision_id=to.decision_id, consent_decision_id=consent_id,
    )  # fmt: skip


def check_live(grant: Grant, revocations: Revocations) -> None:
    """Before every message: a grant revoked or expired since the call began stops the stream."""
    reason = revocations.reason_for(grant.jti)
    if reason is not None:
        raise token_errors.Revoked(reason)
    if grant.expires_at <= int(time.time()):
        raise token_errors.Expired("token has expired")


def _runs(periods: np.ndarray) -> list[tuple[int, int]]:
    """Maximal [start, end) runs of consecutive half-hours."""
    breaks = np.flatnonzero(np.diff(periods) != HALF_HOUR) + 1
    return [(int(run[0]), int(run[-1]) + HALF_HOUR) for run in np.split(periods, breaks)]
