"""Flow 2, member benchmarking: a member's use against similar homes, through the release pipeline.

Peers are the members whose consent allows flow 2 (the consent policy decides, per profile, at
release time) and whose declared home matches what the viewer declared; the season is the one
of the newest reading. A group smaller than k is never shown. Each comparison is one decision-log
entry, and every peer gets an access-log entry that names the comparison, never who looked.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import arrow
import numpy as np
import pandas as pd

from coopfed.node.errors import FailedPrecondition
from coopfed.node.model import HALF_HOUR, Flow
from coopfed.node.policy.holder import PolicyHolder
from coopfed.node.release import pipeline
from coopfed.node.release.pipeline import ReleasePipeline
from coopfed.node.release.privacy import laplace
from coopfed.node.storage import Home, Store
from coopfed.node.storage.governance import GovernanceStore, GrantKind

PATH = "coopfed/benchmark/release"
PURPOSE = "dpv:CommunityEnergyBenchmarking"
DATASET = "demand"
SEASONS = {12: "winter", 1: "winter", 2: "winter", 3: "spring", 4: "spring", 5: "spring",
           6: "summer", 7: "summer", 8: "summer", 9: "autumn", 10: "autumn", 11: "autumn"}  # fmt: skip
BANDS = (
    ("night", 0, 6),
    ("morning", 6, 12),
    ("afternoon", 12, 17),
    ("evening", 17, 22),
    ("late evening", 22, 24),
)
_SIMILAR = ("heating", "home_type", "has_pv", "has_battery")


@dataclass(frozen=True)
class Standing:
    """Where the member stands in one band or month: their use, and the share of peers below."""

    label: str
    kwh: float  # the member's mean kWh per half-hour (bands) or per day (months)
    higher_than: int  # percent of similar homes using less


@dataclass(frozen=True)
class Report:
    season: str
    period: tuple[int, int]
    peers: int
    similar_by: dict[str, object]  # the declarations peers share with the member
    bands: tuple[Standing, ...]
    months: tuple[Standing, ...]
    peak: tuple[str, str]  # the co-op's busiest time of day, local "HH:mm"
    suggestion: str
    comparisons_this_month: int  # comparisons the member's own data was part of
    decision_id: str
    epsilon: float | None = None  # differential privacy of the peer counts, where asked


class Benchmarks:
    """Members' comparisons with similar homes, over the node's store, logs, policy and release pipeline."""

    def __init__(
        self,
        *,
        store: Store,
        governance: GovernanceStore,
        policy: PolicyHolder,
        pipeline: ReleasePipeline,
        tz: str,
    ) -> None:
        self.store, self.governance, self.policy, self.pipeline, self.tz = (
            store,
            governance,
            policy,
            pipeline,
            tz,
        )

    def compare(self, member_id: str, epsilon: float | None = None) -> Report:
        """Compare the member with similar homes; FailedPrecondition when there is nothing to show.
        With `epsilon` (default: the co-op's `privacy.benchmark_epsilon`, if set) the counts of peers
        are differentially private, charged to every consenting member's yearly budget."""
        newest = self.store.newest_period()
        if newest is None:
            raise FailedPrecondition("the co-op holds no readings yet", code="benchmark.no_data")
        if epsilon is None:
            epsilon = self.policy.data.get("privacy", {}).get("benchmark_epsilon")
        season, period = season_window(newest, self.tz)
        home = self.store.homes([member_id]).get(member_id, Home())
        similar = {k: v for k, v in home.declared().items() if k in _SIMILAR} | _size_band(home)
        comparison = "cmp-" + uuid.uuid4().hex[:16]
        ask = pipeline.Ask(Flow.MEMBER_TO_MEMBER.value, PURPOSE, (DATASET,), period, epsilon=epsilon)
        release = self.pipeline.plan(ask, pipeline.Recipient(GrantKind.BENCHMARK, comparison))
        peers = self._peers(release, member_id, similar)
        if epsilon is None:
            _check_group(len(peers), release.min_group_size, season)
        own = self._use(member_id, period)
        theirs = [self._use(m, period) for m in peers]
        question = {"comparison": comparison, "similar_by": similar}
        release = self.pipeline.record(
            release, PATH, question if epsilon else {**question, "peers": len(peers)}
        )
        first = self.peak_slot(period)
        mine = [*own.bands, *own.months.values(), own.share(first)]
        below = [sum(t.bands[i] < v for t in theirs) for i, v in enumerate(own.bands)]
        below += [sum(t.months[m] < v for t in theirs if m in t.months) for m, v in own.months.items()]
        below.append(sum(t.share(first) < mine[-1] for t in theirs))
        n = len(peers)
        of = [n] * len(BANDS) + [sum(m in t.months for t in theirs) for m in own.months] + [n]
        if epsilon is not None:  # k is applied to the noisy count: the true one stays hidden
            below, n = private_counts(below, n, epsilon)
            _check_group(n, release.min_group_size, season)
            of = [n] * len(below)
        self.pipeline.log_members(release, DATASET, peers)  # before anything is shown
        percent = [round(100 * b / d) if d else 0 for b, d in zip(below, of, strict=True)]
        bands = tuple(Standing(b[0], round(own.bands[i], 3), percent[i]) for i, b in enumerate(BANDS))
        months = tuple(
            Standing(m, round(v, 3), percent[len(BANDS) + j]) for j, (m, v) in enumerate(own.months.items())
        )
        peak = (_clock(first), _clock(first + 4))
        return Report(
            season, period, n, similar, bands, months, peak, suggestion(mine[-1], percent[-1], peak),
            self.comparisons_this_month(member_id), release.decision_id, epsilon,
        )  # fmt: skip

    def _peers(self, release: pipeline.Release, member_id: str, similar: dict[str, object]) -> dict[str, str]:
        """Consenting members (id -> profile) other than the viewer whose declarations match."""
        profiles = release.consent_ids[DATASET]
        members = {m: p for p, ms in self.governance.members_of_profiles(list(profiles)).items() for m in ms}
        members.pop(member_id, None)
        if similar:
            homes = self.store.homes(list(members))
            members = {m: p for m, p in members.items() if m in homes and _matches(homes[m], similar)}
        with_data = {m for m, _ in self.governance.contributors(list(profiles), DATASET, [release.period])}
        return {m: p for m, p in members.items() if m in with_data}

    def _use(self, member_id: str, period: tuple[int, int]) -> Use:
        chunks = list(self.store.iter_readings(member_id, DATASET, *period))
        periods = np.concatenate([c.periods for c in chunks]) if chunks else np.empty(0, np.int64)
        kwh = np.concatenate([c.kwh for c in chunks]) if chunks else np.empty(0)
        local = pd.to_datetime(periods, unit="s", utc=True).tz_convert(self.tz)
        slot = np.asarray(local.hour * 2 + local.minute // 30, dtype=np.int64)
        month = np.asarray(local.strftime("%B %Y"))
        bands = [
            float(kwh[(slot >= 2 * a) & (slot < 2 * b)].mean()) if kwh.size else 0.0 for _, a, b in BANDS
        ]
        months = {
            m: float(kwh[month == m].sum() / ((month == m).sum() / 48)) for m in dict.fromkeys(month.tolist())
        }
        return Use(bands, months, np.bincount(slot, weights=kwh, minlength=48))

    def peak_slot(self, period: tuple[int, int]) -> int:
        """The first local half-hour of the co-op's busiest two hours of the day this season, from all
        members' running totals (internal use: nothing of anyone's leaves to find it)."""
        ids = list(self.pipeline.eligible_profiles())
        totals = self.pipeline.eligible_totals(ids, DATASET, period)
        local = pd.to_datetime(totals.period_start, unit="s", utc=True).tz_convert(self.tz)
        slots = np.bincount(
            np.asarray(local.hour * 2 + local.minute // 30), weights=totals.kwh_sum, minlength=48
        )
        return int(np.convolve(np.concatenate([slots, slots[:3]]), np.ones(4), "valid")[:48].argmax())

    def comparisons_this_month(self, member_id: str) -> int:
        """How many comparisons this calendar month (local) the member's data was part of."""
        start = arrow.now(self.tz).floor("month").to("UTC").datetime
        entries = self.governance.access_for_member(member_id, 10_000)
        return len({e.release_id for e in entries if e.flow == Flow.MEMBER_TO_MEMBER.value and e.at >= start})


def _check_group(peers: int, k: int, season: str) -> None:
    if peers < k:
        raise FailedPrecondition(
            f"too few similar homes to compare with this {season} ({peers}; the co-op shows a "
            f"comparison only among at least {k})",
            code="benchmark.group_too_small",
        )


def private_counts(below: Sequence[int], peers: int, epsilon: float) -> tuple[list[int], int]:
    """Noisy counts of peers below the member, and a noisy count of peers: one peer changes
    each of them by at most one, so the L1 sensitivity is their number."""
    values = np.array([*below, peers], dtype=float)
    noisy = np.maximum(np.rint(laplace(values, float(values.size), epsilon)), 0).astype(int)
    n = int(noisy[-1])
    return [min(int(b), n) for b in noisy[:-1]], n


def season_window(newest: int, tz: str) -> tuple[str, tuple[int, int]]:
    """The season (local months) holding `newest`, from its first day up to the newest half-hour."""
    at = arrow.get(newest).to(tz)
    season = SEASONS[at.month]
    start = at.floor("month")
    while SEASONS[start.shift(months=-1).month] == season and (at - start).days < 80:
        start = start.shift(months=-1)
    return season, (int(start.timestamp()), newest + HALF_HOUR)


def _size_band(home: Home) -> dict[str, object]:
    size = home.household_size
    if size is None:
        return {}
    return {"household_size": "1" if size == 1 else "2" if size == 2 else "3-4" if size <= 4 else "5+"}


def _matches(home: Home, similar: dict[str, object]) -> bool:
    return {k: v for k, v in home.declared().items() if k in _SIMILAR} | _size_band(home) == similar


class Use(NamedTuple):
    """One member's season: mean kWh per half-hour by band, kWh a day by month, kWh by slot of day."""

    bands: list[float]
    months: dict[str, float]
    slots: np.ndarray  # 48 local half-hours of the day

    def share(self, first: int) -> float:
        """The share of the season's use in the four half-hours from local slot `first`."""
        total = self.slots.sum()
        return float(self.slots[(first + np.arange(4)) % 48].sum() / total) if total > 0 else 0.0


def suggestion(mine: float, higher: int, peak: tuple[str, str]) -> str:
    """One concrete step tied to the co-op's peak: `mine` is the member's share of use in it,
    `higher` the percent of similar homes with a smaller share."""
    when = f"{peak[0]}-{peak[1]}"
    if higher >= 50:
        return (
            f"{round(100 * mine)}% of your use falls in the co-op's busiest time ({when}), more than "
            f"in {higher}% of similar homes: running the washing machine or dishwasher after {peak[1]} "
            "would ease the peak and use more local energy."
        )
    return (
        f"You use less than most similar homes in the co-op's busiest time ({when}); keeping "
        f"appliances off until after {peak[1]} keeps it that way."
    )


def _clock(slot: int) -> str:
    minutes = (slot % 48) * 30
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
