"""BallotService: proposals, petitions, votes and tallies over gRPC, for members and the board."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from coopfed.node.auth import caller
from coopfed.node.ballots import voting
from coopfed.node.convert import instant_from_proto, timestamp
from coopfed.node.errors import InvalidArgument
from coopfed.node.members import decision_log
from coopfed.node.paging import Page
from coopfed.node.rpc import rpc
from coopfed.node.runtime import Node
from coopfed.node.storage.ballots import BallotRecord
from coopfed.v1 import ballot_pb2 as pb
from coopfed.v1 import ballot_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["BallotService"].full_name


MAX_DEPTH = 16  # policy data is a few levels deep; a deeper patch is a mistake or an attack


def _depth(value: Any) -> int:
    if isinstance(value, dict) and value:
        return 1 + max(_depth(v) for v in value.values())
    if isinstance(value, list) and value:
        return 1 + max(_depth(v) for v in value)
    return 0


def _patch(text: str, field: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidArgument(f"{field}: not JSON", code="ballot.change_json", field=field) from None
    try:
        deep = _depth(value) > MAX_DEPTH
    except RecursionError:
        deep = True
    if deep:
        raise InvalidArgument(
            f"{field}: nested more than {MAX_DEPTH} levels deep", code="ballot.change_json", field=field
        )
    if not isinstance(value, dict):
        raise InvalidArgument(
            f"{field}: a JSON object (a merge patch over the policy data)",
            code="ballot.change_json",
            field=field,
        )
    return value


def changes_from_proto(request: pb.ProposeRequest) -> list[voting.Change]:
    if request.change_json and request.alternatives:
        raise InvalidArgument(
            "give change_json (yes or no) or alternatives (a choice), not both",
            code="ballot.alternatives",
            field="alternatives",
        )
    if request.change_json:
        return [voting.Change("", _patch(request.change_json, "change_json"))]
    return [
        voting.Change(a.title, _patch(a.change_json, f"alternatives[{i}].change_json"))
        for i, a in enumerate(request.alternatives)
    ]


def _unix(request: Any, field: str) -> int | None:
    at = instant_from_proto(request, field)
    return None if at is None else int(at.timestamp())


def ballot_to_proto(b: BallotRecord, now: int, you_voted: bool = False) -> pb.Ballot:
    p = b.proposal
    out = pb.Ballot(
        ballot_id=b.ballot_id, title=p["title"], explanation=p["explanation"], state=voting.state(b, now),
        proposed_by=b.proposed_by, choices=[pb.Choice(**c) for c in p["choices"]],
        signatures=b.signatures, signatures_needed=p["rules"]["petition_signatures"], voted=b.voted,
        you_voted=you_voted, proposal_json=json.dumps(p, ensure_ascii=False),
        tally_json=json.dumps(b.tally, ensure_ascii=False) if b.tally is not None else "",
        tally_digest=b.tally_digest,
    )  # fmt: skip
    if b.opens_unix is not None and b.closes_unix is not None:
        out.opens_at.CopyFrom(timestamp(b.opens_unix))
        out.closes_at.CopyFrom(timestamp(b.closes_unix))
    return out


class BallotService(pb_grpc.BallotServiceServicer):
    def __init__(self, node: Node) -> None:
        self.node = node

    def _answer(self, ballot: BallotRecord) -> pb.Ballot:
        who = caller()
        store = voting.store_of(self.node)
        voted = who.kind == "member" and store.has_voted(ballot.ballot_id, who.id)
        return ballot_to_proto(ballot, int(time.time()), voted)

    @rpc
    async def Propose(self, request, context):
        alternatives = changes_from_proto(request)
        opens, closes = _unix(request, "opens_at"), _unix(request, "closes_at")
        if caller().kind != "board" and (opens or closes):
            raise InvalidArgument(
                "opens_at, closes_at: a petition opens when enough members sign it", code="ballot.times"
            )
        ballot = await asyncio.to_thread(
            voting.propose, self.node, caller(), request.title, request.explanation, alternatives,
            opens, closes, int(time.time()),
        )  # fmt: skip
        return await asyncio.to_thread(self._answer, ballot)

    @rpc
    async def ListBallots(self, request, context):
        page = Page(decision_log(self.node), request, caller=caller().id)
        ballots = await asyncio.to_thread(voting.store_of(self.node).list_ballots)
        found, token = page.of_sorted(ballots, lambda b: (-b.created_unix, b.ballot_id))  # newest first
        now = int(time.time())
        listed = [ballot_to_proto(b, now) for b in found]
        for b in listed:  # the list is an index: each proposal with its impact reports is in GetBallot
            b.ClearField("proposal_json")
        return pb.ListBallotsResponse(ballots=listed, next_page_token=token)

    @rpc
    async def GetBallot(self, request, context):
        ballot = await asyncio.to_thread(voting.get, self.node, request.ballot_id)
        return await asyncio.to_thread(self._answer, ballot)

    @rpc
    async def SignPetition(self, request, context):
        ballot = await asyncio.to_thread(
            voting.sign, self.node, caller(), request.ballot_id, int(time.time())
        )
        return await asyncio.to_thread(self._answer, ballot)

    @rpc
    async def Vote(self, request, context):
        receipt, digest = await asyncio.to_thread(
            voting.vote, self.node, caller(), request.ballot_id, request.choice, int(time.time())
        )
        return pb.VoteResponse(receipt=receipt, receipt_hash=digest)

    @rpc
    async def Tally(self, request, context):
        ballot = await asyncio.to_thread(voting.tally, self.node, request.ballot_id, int(time.time()))
        return await asyncio.to_thread(self._answer, ballot)
