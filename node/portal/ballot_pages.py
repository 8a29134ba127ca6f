"""The members' ballots: what is proposed and what it would change, voting, and the results."""

from __future__ import annotations

import time
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from coopfed.node.auth import Principal
from coopfed.node.ballots import voting
from coopfed.node.ballots.tally import find_receipt
from coopfed.node.portal.accounts import Account
from coopfed.node.portal.app import call, page, portal, render, text
from coopfed.node.portal.parts import PortalParts
from coopfed.node.storage.ballots import BallotRecord, BallotStore


def _view(ballots: BallotStore, ballot: BallotRecord, member_id: str, now: int) -> dict[str, Any]:
    p = ballot.proposal
    state = voting.state(ballot, now)
    return {
        "id": ballot.ballot_id, "title": p["title"], "explanation": p["explanation"], "state": state,
        "state_words": voting.STATE_WORDS.get(state, state),
        "opens": ballot.opens_unix, "closes": ballot.closes_unix,
        "signatures": ballot.signatures, "needed": p["rules"]["petition_signatures"], "voted": ballot.voted,
        "choices": p["choices"], "alternatives": p["alternatives"], "rules": p["rules"],
        "tally": ballot.tally, "digest": ballot.tally_digest,
        "you_voted": ballots.has_voted(ballot.ballot_id, member_id),
    }  # fmt: skip


def _list(ballots: BallotStore, member_id: str) -> list[dict[str, Any]]:
    now = int(time.time())
    return [_view(ballots, b, member_id, now) for b in ballots.list_ballots()]


@page()
async def ballots(request: Request, account: Account) -> Response:
    view = await call(_list, portal(request).parts.ballots, account.member_id)
    return render(request, "ballots.html", ballots=view)


def _one(parts: PortalParts, ballot_id: str, member_id: str) -> dict[str, Any]:
    now = int(time.time())
    ballot = parts.ballot(ballot_id)
    if voting.state(ballot, now) == "awaiting its count":
        ballot = parts.tally(ballot_id, now)  # the first member to look after the close counts it
    return _view(parts.ballots, ballot, member_id, now)


async def _show(request: Request, account: Account, **context: Any) -> Response:
    """The ballot of the request's path, as it stands now (after the member's vote or signature)."""
    view = await call(_one, portal(request).parts, request.path_params["ballot_id"], account.member_id)
    return render(request, "ballot.html", b=view, **context)


@page()
async def ballot(request: Request, account: Account) -> Response:
    return await _show(request, account)


@page()
async def vote(request: Request, account: Account, form: FormData) -> Response:
    who = Principal("member", account.member_id)
    ballot_id, choice = request.path_params["ballot_id"], text(form, "choice")
    receipt, _ = await call(portal(request).parts.vote, who, ballot_id, choice, int(time.time()))
    return await _show(request, account, receipt=receipt)


@page()
async def sign(request: Request, account: Account, form: FormData) -> Response:
    who = Principal("member", account.member_id)
    await call(portal(request).parts.sign, who, request.path_params["ballot_id"], int(time.time()))
    return await _show(request, account, signed=True)


@page()
async def check(request: Request, account: Account, form: FormData) -> Response:
    ballot_id = request.path_params["ballot_id"]
    view = await call(_one, portal(request).parts, ballot_id, account.member_id)
    counted = find_receipt(view["tally"] or {}, ballot_id, text(form, "receipt").strip())
    return render(request, "ballot.html", b=view, checked=True, counted=counted)


routes = [
    Route("/ballots", ballots),
    Route("/ballots/{ballot_id}", ballot),
    Route("/ballots/{ballot_id}/vote", vote, methods=["POST"]),
    Route("/ballots/{ballot_id}/sign", sign, methods=["POST"]),
    Route("/ballots/{ballot_id}/check", check, methods=["POST"]),
]
