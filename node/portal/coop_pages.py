"""The co-op's pages for every member: our neighbourhood's energy, and how our co-op decides."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from coopfed.node.policy.holder import PolicyHolder
from coopfed.node.portal import charts, words
from coopfed.node.portal.accounts import Account
from coopfed.node.portal.app import call, page, portal, render
from coopfed.node.storage import Store
from coopfed.node.storage.governance import GovernanceStore
from coopfed.node.storage.records import DecisionFilter

YEAR = 365 * charts.DAY


@page()
async def neighbourhood(request: Request, account: Account) -> Response:
    p = portal(request)
    view = await call(neighbourhood_view, p.parts.store, p.parts.policy.data, p.tz)
    return render(request, "neighbourhood.html", **view)


def neighbourhood_view(store: Store, data: words.Data, tz: str) -> dict[str, Any]:
    """Co-op totals by time of day, from half-hours with at least k members only (internal use:
    every member's consent allows it, and no household stands out in a small group)."""
    k = int(data["coop"]["k_min"])
    now = store.newest_period() or int(time.time())
    profiles = [p.profile_id for p in store.profiles()]
    series, kept = [], {}
    for ds in ("demand", "generation"):
        totals = store.profile_totals(profiles, ds, start=now - YEAR, end=now + 1)
        ok = totals.member_count >= k
        kept[ds] = totals.kwh_sum[ok].sum()
        series.append(charts.Series(ds, charts.time_of_day(totals.period_start[ok], totals.kwh_sum[ok], tz)))
    chart = charts.bar_chart("The co-op on an average day: kWh per half-hour", charts.clock_labels(), series)
    local = float(min(kept["generation"], kept["demand"]) / kept["demand"]) if kept["demand"] else 0.0
    return {
        "k": k, "chart": chart, "series": series, "clock": charts.clock_labels(),
        "members": sum(p.member_count for p in store.profiles()),
        "local_share": local, "has_data": bool(np.any([s.values.any() for s in series])),
    }  # fmt: skip


@page(applicant=True)
async def decides(request: Request, account: Account) -> Response:
    parts = portal(request).parts
    return render(request, "decides.html", **await call(decides_view, parts.governance, parts.policy))


def decides_view(governance: GovernanceStore, policy: PolicyHolder) -> dict[str, Any]:
    """The rules in force, recent decisions without the requesters' names, and agreement with the board."""
    data = policy.data
    gov = data["governance"]
    org = gov["organisation"]
    recent: list[dict[str, Any]] = []
    rows, reviewed, agreed = governance.list_decisions(DecisionFilter(limit=20))
    for _by, record in rows:
        w = words.decision_words(governance, record.request_id)
        recent.append({**w, "purpose": words.purpose_label(data, record.spec.purpose)})
    return {
        "revision": policy.revision, "source": policy.source, "thresholds": gov["thresholds"],
        "stage_weights": gov["stage_weights"], "dimensions": org["dimensions"], "k": data["coop"]["k_min"],
        "personas": words.personas(data), "recent": recent, "reviewed": reviewed, "agreed": agreed,
        "always_refer": gov["always_refer"], "shadow": gov.get("shadow_mode", False),
    }  # fmt: skip


routes = [Route("/neighbourhood", neighbourhood), Route("/decides", decides)]
