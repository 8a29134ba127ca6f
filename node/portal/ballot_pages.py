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
from coopfed.node.runtime import Node
from coopfed.node.services import ballots_of
from coopfed.node.storage.ballots import BallotRecord


def _view(node: Node, ballot: BallotRecord, member_id: str, now: int) -> dict[str, Any]:
    p = ballot.proposal
    state = voting.state(ballot, now)
    return {
        "id": ballot.ballot_id, "title": p["title"], "explanation": p["explanation"], "state": state,
        "state_words": voting.STATE_WORDS.get(state, state),
        "opens": ballot.opens_unix, "closes": ballot.closes_unix,
        "signatures": ballot.signatures, "needed": p["rules"]["petition_signatures"], "voted": ballot.voted,
        "choices": p["choices"], "alternatives": p["alternatives"], "rules": p["rules"],
        "tally": ballot.tally, "digest": ballot.tally_digest,
        "you_voted": ballots_of(node).has_voted(ballot.ballot_id, member_id),
    }  # fmt: skip


def _list(node: Node, member_id: str) -> list[dict[str, Any]]:
    now = int(time.time())
    return [_view(node, b, member_id, now) for b in ballots_of(node).all_ballots()]


@page()
async def ballots(request: Request, account: Account) -> Response:
    node = portal(request).node
    return render(request, "ballots.html", ballots=await call(_list, node, account.member_id))


def _one(node: Node, ballot_id: str, member_id: str, now: int) -> dict[str, Any]:
    ballot = ballots_of(node).get(ballot_id)
    if voting.state(ballot, now) == "awaiting its count":
        ballot = ballots_of(node).tally(ballot_id, now)  # the first member to look after the close counts it
    return _view(node, ballot, member_id, now)


@page()
async def ballot(request: Request, account: Account) -> Response:
    node = portal(request).node
    view = await call(_one, node, request.path_params["ballot_id"], account.member_id, int(time.time()))
    return render(request, "ballot.html", b=view)


@page()
async def vote(request: Request, account: Account, form: FormData) -> Response:
    node = portal(request).node
    ballot_id = request.path_params["ballot_id"]
    who = Principal("member", account.member_id)
    receipt, _ = await call(ballots_of(node).vote, who, ballot_id, text(form, "choice"), int(time.time()))
    view = await call(_one, node, ballot_id, account.member_id, int(time.time()))
    return render(request, "ballot.html", b=view, receipt=receipt)


@page()
async def sign(request: Request, account: Account, form: FormData) -> Response:
    node = portal(request).node
    ballot_id = request.path_params["ballot_id"]
    await call(ballots_of(node).sign, Principal("member", account.member_id), ballot_id, int(time.time()))
    view = await call(_one, node, ballot_id, account.member_id, int(time.time()))
    return render(request, "ballot.html", b=view, signed=True)


@page()
async def check(request: Request, account: Account, form: FormData) -> Response:
    node = portal(request).node
    ballot_id = request.path_params["ballot_id"]
    view = await call(_one, node, ballot_id, account.member_id, int(time.time()))
    counted = find_receipt(view["tally"] or {}, ballot_id, text(form, "receipt").strip())
    return render(request, "ballot.html", b=view, checked=True, counted=counted)


routes = [
    Route("/ballots", ballots),
    Route("/ballots/{ballot_id}", ballot),
    Route("/ballots/{ballot_id}/vote", vote, methods=["POST"]),
    Route("/ballots/{ballot_id}/sign", sign, methods=["POST"]),
    Route("/ballots/{ballot_id}/check", check, methods=["POST"]),
]
