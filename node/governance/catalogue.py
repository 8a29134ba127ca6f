"""The dataset catalogue third parties read, and the facts about held data that the policy checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coopfed.node.model import DATASETS, HALF_HOUR

if TYPE_CHECKING:
    from coopfed.node.policy.consent import ConsentAnswers
    from coopfed.node.policy.holder import PolicyHolder
    from coopfed.node.storage import ProfileInfo, Store


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset as a DCAT-style catalogue describes it."""

    id: str
    title: str
    description: str
    unit: str
    granularities: tuple[str, ...]
    temporal_resolutions: tuple[str, ...]
    period: tuple[int, int] | None  # [start, end) held, None when nothing is held
    sensitivity: str
    fields: tuple[tuple[str, dict[str, Any]], ...]
    keywords: tuple[str, ...]


def held_period(store: Store, profiles: list[ProfileInfo], dataset: str) -> tuple[int, int] | None:
    """The first and last half-hour held for a dataset, over every member's current profile.

    Uses the per-profile running totals: the cost grows with periods x profiles, not readings.
    """
    if dataset not in DATASETS or not profiles:
        return None
    totals = store.profile_totals([p.profile_id for p in profiles], dataset)
    if totals.period_start.size == 0:
        return None
    return int(totals.period_start[0]), int(totals.period_start[-1]) + HALF_HOUR


def catalogue(
    store: Store, policy: PolicyHolder, *, after: str = "", limit: int | None = None
) -> list[DatasetEntry]:
    """The datasets offered, by id, from the one after `after`; each entry reads the store, so
    only the `limit` asked for are made."""
    data = policy.data
    offered = data["governance"]["catalogue"]
    fields = data["governance"]["fields"]
    profiles = store.profiles()
    entries: list[DatasetEntry] = []
    for ds, meta in sorted(offered.items()):
        if ds <= after:
            continue
        if limit is not None and len(entries) == limit:
            break
        described = data["datasets"][ds]
        entries.append(
            DatasetEntry(
                id=ds,
                title=described["title"],
                description=described["description"],
                unit=described.get("unit", ""),
                granularities=tuple(meta["granularities"]),
                temporal_resolutions=tuple(described.get("granularities", ())),
                period=held_period(store, profiles, ds),
                sensitivity=meta["sensitivity"],
                fields=tuple(
                    (name, f)
                    for name, f in sorted(fields.items())
                    if set(f["granularities"]) & set(meta["granularities"])
                ),
                keywords=tuple(meta.get("keywords", ())),
            )
        )
    return entries


def policy_facts(
    store: Store, consent: ConsentAnswers, datasets: tuple[str, ...], flow: str, purpose: str
) -> dict[str, Any]:
    """What the data requirement stage checks for each dataset asked for: held, over which
    period, and how many members consent to this flow and purpose (one decision per profile)."""
    profiles = store.profiles()
    facts: dict[str, Any] = {}
    for ds in datasets:
        if ds not in DATASETS:
            facts[ds] = {"held": False, "period": None, "consenting_members": 0}
            continue
        period = held_period(store, profiles, ds)
        consenting = sum(
            p.member_count for p in profiles if consent.allows(p.settings.policy_input(), ds, flow, purpose)
        )
        facts[ds] = {
            "held": period is not None,
            "period": {"start": period[0], "end": period[1]} if period else None,
            "consenting_members": consenting,
        }
    return facts


def purposes(policy: PolicyHolder) -> list[dict[str, Any]]:
    data = policy.data
    aims = set(data["coop"]["aims"])
    prohibited = set(data["governance"]["purpose"]["prohibited"])
    return [
        {
            "code": code,
            "label": p["label"],
            "description": p["description"],
            "among_aims": code in aims,
            "prohibited": code in prohibited,
        }
        for code, p in sorted(data["purposes"].items())
    ]
