"""The board's pages: referred requests with their full context, admissions, decisions, and grants."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from coopfed.node.errors import InvalidArgument
from coopfed.node.portal import words
from coopfed.node.portal.accounts import Account
from coopfed.node.portal.app import call, page, portal, render, text
from coopfed.node.storage.governance import GovernanceStore
from coopfed.node.storage.records import DecisionFilter, Outcome, RequestState


def reviewer(account: Account) -> str:
    """How the decision log names a board member who decided in the portal."""
    return f"portal:{account.member_id}"


View = Callable[[GovernanceStore, words.Data], list[dict[str, Any]]]


async def _listing(request: Request, template: str, name: str, view: View) -> Response:
    """A page listing the rows `view` reads from the governance records, in the policy's words."""
    parts = portal(request).parts
    return render(request, template, **{name: await call(view, parts.governance, parts.policy.data)})


@page(board=True)
async def referred(request: Request, account: Account) -> Response:
    return await _listing(request, "board_referred.html", "requests", referred_view)


def referred_view(governance: GovernanceStore, data: words.Data) -> list[dict[str, Any]]:
    out = []
    for r in governance.list_requests(state=RequestState.AWAITING_REVIEW, oldest_first=True):
        org = governance.get_organisation(r.organisation_id)
        out.append({
            "id": r.request_id, "org": org, "spec": r.spec, "submitted": r.submitted_at,
            "purpose": words.purpose_label(data, r.spec.purpose),
            "decision": words.decision_words(governance, r.request_id),
            "granularity": words.GRANULARITY.get(r.spec.granularity.value, r.spec.granularity.value),
            "period": (words.at(r.spec.period_start), words.at(r.spec.period_end)),
            "org_score": org.assessment.score if org.assessment else None,
        })  # fmt: skip
    return out


@page(board=True)
async def decide(request: Request, account: Account, form: FormData) -> Response:
    try:
        outcome = {"approve": Outcome.APPROVE, "reject": Outcome.REJECT}[text(form, "outcome")]
    except KeyError:
        raise InvalidArgument("Choose approve or reject.", code="portal.outcome", field="outcome") from None
    request_id = request.path_params["request_id"]
    await call(portal(request).parts.review, request_id, reviewer(account), outcome, text(form, "reason"))
    return RedirectResponse("/board/decisions?done=" + request_id, status_code=303)


@page(board=True)
async def admissions(request: Request, account: Account) -> Response:
    applicants = await call(portal(request).parts.store.applicants)
    return render(
        request, "board_admissions.html", applicants=applicants, done=request.query_params.get("done")
    )


@page(board=True)
async def admit(request: Request, account: Account, form: FormData) -> Response:
    """Admit or refuse an applicant, as ReviewService does, the decision logged with the reason."""
    choice = text(form, "outcome")
    if choice not in ("admit", "refuse"):
        raise InvalidArgument("Choose admit or refuse.", code="portal.outcome", field="outcome")
    member_id = request.path_params["member_id"]
    parts = portal(request).parts
    await call(parts.admit, member_id, choice == "admit", text(form, "reason"), reviewer(account))
    return RedirectResponse(f"/board/admissions?done={choice}", status_code=303)


@page(board=True)
async def decisions(request: Request, account: Account) -> Response:
    parts = portal(request).parts
    by = request.query_params.get("by", "")
    if by not in ("", "policy", "board"):
        by = ""
    view = await call(decisions_view, parts.governance, parts.policy.data, by)
    return render(request, "board_decisions.html", by=by, **view)


def decisions_view(governance: GovernanceStore, data: words.Data, by: str) -> dict[str, Any]:
    rows, reviewed, agreed = governance.list_decisions(DecisionFilter(decided_by=by, limit=100))
    listed = [
        {**words.decision_words(governance, r.request_id), "id": r.request_id, "org": r.organisation_id,
         "purpose": words.purpose_label(data, r.spec.purpose)}
        for _by, r in rows
    ]  # fmt: skip
    return {"decisions": listed, "reviewed": reviewed, "agreed": agreed}


@page(board=True)
async def grants(request: Request, account: Account) -> Response:
    return await _listing(request, "board_grants.html", "grants", grants_view)


def grants_view(governance: GovernanceStore, data: words.Data) -> list[dict[str, Any]]:
    return [
        {
            "id": g.grant_id, "org": org.profile.name,
            "purpose": words.purpose_label(data, g.scope.purpose), "datasets": sorted(g.scope.datasets),
            "expires": words.at(g.expires_at), "revoked": g.revoked, "reason": g.revocation_reason,
        }
        for org in governance.list_organisations()
        for g in governance.list_grants(org.organisation_id)
    ]  # fmt: skip


@page(board=True)
async def revoke(request: Request, account: Account, form: FormData) -> Response:
    parts = portal(request).parts
    await call(parts.revoke, request.path_params["grant_id"], text(form, "reason"), reviewer(account))
    return RedirectResponse("/board/grants", status_code=303)


routes = [
    Route("/board", referred),
    Route("/board/requests/{request_id:str}", decide, methods=["POST"]),
    Route("/board/admissions", admissions),
    Route("/board/admissions/{member_id:str}", admit, methods=["POST"]),
    Route("/board/decisions", decisions),
    Route("/board/grants", grants),
    Route("/board/grants/{grant_id:str}/revoke", revoke, methods=["POST"]),
]
