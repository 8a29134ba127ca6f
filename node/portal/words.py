"""Plain words for what the policy data and the records hold: flows, levels, personas, uses of data."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from coopfed.node.errors import CoopfedError
from coopfed.node.model import DATASETS, Flow
from coopfed.node.storage import NotFound
from coopfed.node.storage.governance import GovernanceStore

if TYPE_CHECKING:
    from coopfed.node.forecast.context import ForecastContext

Data = Mapping[str, Any]  # the policy data in force: read from the holder at each use

LEVELS = {
    "green": ("Green", "The co-op may share your data as it sees fit, within its aims and its rules."),
    "amber": ("Amber", "You choose, for each kind of data, who the co-op may share it with."),
    "red": ("Red", "The co-op uses your data only to run its own services, and shares it with no one."),
}
OUTCOMES = {"approve": "approved", "reject": "refused", "refer": "sent to the board"}
GRANULARITY = {
    "individual": "each household's own readings, under a pseudonym",
    "aggregate": "totals over several households, never one household alone",
}
RECEIPT_NOTE = (
    "signed_receipt is a JSON Web Token signed by the co-op's node; its public keys are in the node's "
    "manifest, so anyone can check that the co-op issued this receipt and that it was not changed."
)


def flows(data: Data) -> list[dict[str, Any]]:
    """Each flow with one sentence for what green, amber and red allow."""
    out = []
    for flow in Flow:
        info = data["flows"][flow.value]
        phrase = info["phrase"]
        if flow is Flow.INTERNAL:
            allow = {lvl: f"Always {phrase}: the co-op needs it to run your account." for lvl in LEVELS}
        else:
            allow = {
                "green": f"Your data may be {phrase}, when the co-op's rules allow the purpose.",
                "amber": f"Only the kinds of data you tick below are {phrase}.",
                "red": f"Never {phrase}.",
            }
        out.append(
            {"id": flow.value, "title": info["title"], "description": info["description"], "allow": allow}
        )
    return out


def datasets(data: Data) -> list[dict[str, str]]:
    info = data["datasets"]
    return [{"id": ds, "title": info.get(ds, {}).get("title", ds)} for ds in DATASETS]


def personas(data: Data) -> list[dict[str, Any]]:
    """Each persona with what it allows, flow by flow, to show them side by side."""
    out = []
    for name, p in sorted(data["consent"]["personas"].items()):
        allowed = {
            flow.value: sorted(ds for ds, fl in p.get("flows", {}).items() if flow.value in fl)
            for flow in Flow
        }
        allowed[Flow.INTERNAL.value] = list(DATASETS)  # always, whatever the preset says
        out.append({"id": name, "title": p["title"], "description": p["description"], "allowed": allowed})
    return out


def purpose_label(data: Data, code: str) -> str:
    return data["purposes"].get(code, {}).get("label", code)


def data_uses(governance: GovernanceStore, data: Data, member_id: str) -> list[dict[str, Any]]:
    """Every release of the member's data, newest first, with the decision that allowed it."""
    decisions: dict[str, dict[str, Any]] = {}
    uses = []
    for e in governance.access_for_member(member_id, 500):
        if e.request_id not in decisions:
            decisions[e.request_id] = decision_words(governance, e.request_id)
        uses.append({
            "at": e.at, "who": e.organisation_name or e.organisation_id,
            "purpose": purpose_label(data, e.purpose),
            "flow": data["flows"].get(e.flow, {}).get("title", e.flow),
            "dataset": data["datasets"].get(e.dataset, {}).get("title", e.dataset),
            "granularity": GRANULARITY.get(e.granularity, e.granularity),
            "period": (at(e.period_start), at(e.period_end)), "decision": decisions[e.request_id],
        })  # fmt: skip
    return uses


def decision_words(governance: GovernanceStore, request_id: str) -> dict[str, Any]:
    """Who decided a request and why: the policy's scores and reasons, the board's reason if it reviewed."""
    try:
        record = governance.get_request(request_id)
    except (NotFound, CoopfedError):
        return {"by": "unknown", "outcome": "", "reasons": [], "stages": [], "revision": ""}
    d = record.decision
    stages = [
        {"name": name, "score": int(s.get("score", 0)), "reasons": list(s.get("reasons", []))}
        for name, s in (
            (n, d.result.get("stages", {}).get(n, {})) for n in ("requirement", "organisation", "purpose")
        )
    ]
    review = record.review
    return {
        "by": "the co-op's board" if review else "the co-op's policy",
        "outcome": OUTCOMES.get((review.outcome if review else d.outcome).value, ""),
        "reasons": [review.reason] if review else list(d.result.get("reasons", [])),
        "policy_reasons": list(d.result.get("reasons", [])), "score": int(d.result.get("score", 0)),
        "stages": stages, "revision": d.revision, "at": review.decided_at if review else d.decided_at,
    }  # fmt: skip


def nudges(forecast: ForecastContext | None, tz: str) -> list[str]:
    """What to do in the next 48 hours, from the co-op's latest forecast; empty without one."""
    if forecast is None:
        return []
    latest = forecast.store.latest()
    if latest is None:
        return []
    from coopfed.node.forecast.service import texts

    return texts(latest.open_windows(int(time.time())), tz)


def at(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)
