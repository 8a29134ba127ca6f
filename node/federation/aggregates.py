"""Aggregates released to a peer: consent once per profile, running totals, k-suppression, noise.

The cost of a release is O(periods x profiles): members with the same consent settings share a
profile, the consent policy is asked once per profile (and cached per policy revision), and the
store keeps per-profile running totals, so no reading is touched at release time. The access log
gets one entry per member and dataset released, written in one transaction before data leaves.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from coopfed.federation.grants import Grant, Granularity, NoiseMechanism
from coopfed.node.errors import FailedPrecondition, InvalidArgument
from coopfed.node.governance.model import AccessEntry
from coopfed.node.model import HALF_HOUR, Flow
from coopfed.node.storage import PeriodTotals
from coopfed.node.storage.governance import GrantKind

if TYPE_CHECKING:
    from coopfed.node.runtime import Node

RELEASE_PATH = "coopfed/federation/release"
GAUSSIAN_DELTA = 1e-5  # the delta of (epsilon, delta) differential privacy for Gaussian noise
_EMPTY = PeriodTotals(np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64))


@dataclass(frozen=True)
class Release:
    """What one FetchAggregates call releases, decided before any data is read."""

    grant: Grant
    datasets: tuple[str, ...]
    period: tuple[int, int]
    min_group_size: int
    profiles_total: int
    consent_ids: dict[str, dict[str, str]]  # dataset -> consenting profile -> consent decision id

    @property
    def consenting(self) -> dict[str, list[str]]:
        """Dataset -> profile ids whose consent allows the release."""
        return {ds: list(ids) for ds, ids in self.consent_ids.items()}

    @property
    def profiles_included(self) -> int:
        return len({p for ids in self.consenting.values() for p in ids})


@dataclass(frozen=True)
class Series:
    """One dataset's released cells, in period order."""

    dataset: str
    periods: np.ndarray
    kwh: np.ndarray | None  # None where the field was not granted
    member_count: np.ndarray | None
    suppressed: np.ndarray

    def chunks(self, size: int) -> Iterator[Series]:
        """The series in pieces of at most `size` released periods (suppressed ones ride along)."""
        if self.periods.size <= size:
            yield self
            return
        for start in range(0, self.periods.size, size):
            end = min(start + size, self.periods.size)
            lo = self.periods[start] if start else np.iinfo(np.int64).min
            hi = self.periods[end] if end < self.periods.size else np.iinfo(np.int64).max
            part = slice(start, end)
            yield Series(
                self.dataset,
                self.periods[part],
                None if self.kwh is None else self.kwh[part],
                None if self.member_count is None else self.member_count[part],
                self.suppressed[(self.suppressed >= lo) & (self.suppressed < hi)],
            )


def plan_release(
    node: Node, grant: Grant, datasets: tuple[str, ...], period: tuple[int, int] | None
) -> Release:
    """Check the call against the grant (PERMISSION_DENIED beyond it) and ask consent per profile."""
    scope = grant.scope
    datasets = datasets or tuple(sorted(scope.datasets))
    if len(set(datasets)) != len(datasets):
        raise InvalidArgument("datasets: each dataset once", code="fetch.datasets", field="datasets")
    start, end = period or (scope.period_start, scope.period_end)
    if start % HALF_HOUR or end % HALF_HOUR or start >= end:
        raise InvalidArgument(
            "period: half-hour aligned, start before end", code="fetch.period", field="period"
        )
    # Only coop_to_coop grants release here: a third party's grant fails on its flow.
    grant.check(
        datasets=datasets,
        period_start=start,
        period_end=end,
        flow=Flow.COOP_TO_COOP.value,
        purpose=scope.purpose,
        granularity=Granularity.AGGREGATE,
    )
    k = max(grant.constraints.min_group_size, int(node.policy_data["coop"]["k_min"]))
    profiles = node.store.profiles()
    consent_ids: dict[str, dict[str, str]] = {}
    for ds in datasets:
        consent_ids[ds] = {}
        for p in profiles:
            decision, decision_id = node.consent_logged(
                p.settings.policy_input(), ds, Flow.COOP_TO_COOP.value, scope.purpose
            )
            if decision.allowed:
                consent_ids[ds][p.profile_id] = decision_id
    return Release(grant, datasets, (start, end), k, len(profiles), consent_ids)


def log_release(node: Node, release: Release) -> str:
    """Record the release in the decision log before any data leaves; returns its decision_id."""
    log = node.decision_log
    if log is None:
        return ""
    grant = release.grant
    question = {
        "grant_id": grant.jti,
        "peer": grant.subject,
        "datasets": list(release.datasets),
        "period": {"start": release.period[0], "end": release.period[1]},
        "flow": Flow.COOP_TO_COOP.value,
        "purpose": grant.scope.purpose,
    }
    answer = {"consenting_profiles": release.consenting, "min_group_size": release.min_group_size}
    event = log.event(RELEASE_PATH, question, answer, node.policy.revision)
    log.append(event)  # durable, with the consent decisions it relies on
    node.metrics.released(Flow.COOP_TO_COOP.value)
    return str(event["decision_id"])


def release_series(node: Node, release: Release, dataset: str) -> Series:
    """Totals over the consenting profiles; cells with fewer than k members are withheld."""
    ids = release.consenting[dataset]
    totals = node.store.profile_totals(ids, dataset, *release.period) if ids else _EMPTY
    keep = totals.member_count >= release.min_group_size
    fields = release.grant.scope.fields
    kwh = totals.kwh_sum[keep] if "kwh" in fields else None
    if kwh is not None and release.grant.constraints.noise is not None:
        kwh = _noisy(node, release, kwh)
    return Series(
        dataset,
        totals.period_start[keep],
        kwh,
        totals.member_count[keep] if "member_count" in fields else None,
        totals.period_start[~keep],
    )


def log_access(
    node: Node, release: Release, released: Sequence[Series], recipient: tuple[str, str], release_id: str
) -> int:
    """Before any data leaves: an access-log entry for each member whose readings lie in the
    released cells' span, per dataset, in one transaction. `recipient` is the peer's (id, name).
    Returns the number of entries. A node without an access log releases nothing."""
    governance = node.governance
    if governance is None:
        raise FailedPrecondition("this node keeps no access log; it releases nothing", code="release.no_log")
    decision_id = _grant_decision_id(node, release.grant.jti)
    rows: list[tuple[str, AccessEntry]] = []
    for series in released:
        if series.periods.size == 0:
            continue  # nothing of anyone's is released
        profiles = release.consent_ids[series.dataset]
        entries = {  # one per consenting profile, shared by its members
            profile: _entry(release, series.dataset, recipient, release_id, decision_id, consent_id)
            for profile, consent_id in profiles.items()
        }
        span = [(int(series.periods[0]), int(series.periods[-1]) + HALF_HOUR)]
        found = governance.contributors(list(profiles), series.dataset, span)
        rows += [(member, entries[profile]) for member, profile in found]
    governance.record_access(rows, GrantKind.FEDERATION)
    return len(rows)


def _entry(
    release: Release,
    dataset: str,
    recipient: tuple[str, str],
    release_id: str,
    decision_id: str,
    consent_id: str,
) -> AccessEntry:
    scope = release.grant.scope
    return AccessEntry(
        at=datetime.now(UTC), release_id=release_id, grant_id=release.grant.jti, request_id="",
        organisation_id=recipient[0], organisation_name=recipient[1], purpose=scope.purpose,
        flow=Flow.COOP_TO_COOP.value, dataset=dataset, granularity=Granularity.AGGREGATE.value,
        period_start=release.period[0], period_end=release.period[1], decision_id=decision_id,
        consent_decision_id=consent_id,
    )  # fmt: skip


def _grant_decision_id(node: Node, jti: str) -> str:
    """The decision-log id of the grant decision that issued `jti`, "" if this node has none."""
    if node.federation is None:
        return ""
    for record in reversed(node.federation.state.decisions.read()):
        if (record.get("grant") or {}).get("jti") == jti:
            return str(record.get("decision_id", ""))
    return ""


def _noisy(node: Node, release: Release, kwh: np.ndarray) -> np.ndarray:
    """Add the noise the grant requires: per-cell sensitivity is one member's largest half-hour."""
    noise = release.grant.constraints.noise
    assert noise is not None
    sensitivity = float(node.policy_data["federation"]["noise"]["sensitivity_kwh"])
    rng = np.random.default_rng()  # seeded from the OS's entropy on every release
    if noise.mechanism is NoiseMechanism.LAPLACE:
        added = rng.laplace(0.0, sensitivity / noise.epsilon, kwh.size)
    else:
        sigma = sensitivity * math.sqrt(2 * math.log(1.25 / GAUSSIAN_DELTA)) / noise.epsilon
        added = rng.normal(0.0, sigma, kwh.size)
    return np.maximum(kwh + added, 0.0)
