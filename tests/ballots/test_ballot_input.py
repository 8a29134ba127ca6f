"""Bad input gets the right gRPC status and stores nothing."""

from __future__ import annotations

import json
import time

import grpc
import pytest

from coopfed.v1 import ballot_pb2 as pb

from .conftest import Coop

pytestmark = pytest.mark.integration


def _status(call) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def _propose(coop: Coop, md, **kw) -> pb.Ballot:  # type: ignore[no-untyped-def]
    request = pb.ProposeRequest(title=kw.pop("title", "A change"), explanation="Because.", **kw)
    return coop.stub.Propose(request, metadata=md, timeout=300)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "a JSON object"),
        ("[" * 5000 + "]" * 5000, "not JSON"),
        ('{"a":' * 40 + "1" + "}" * 40, "nested more than 16 levels"),
        (json.dumps({"coop": {"name": "Another name"}}), "members do not decide /coop/name"),
        (json.dumps({"coop": {"k_min": 5}}), "changes nothing"),
        (json.dumps({"coop": {"k_min": "three"}}), "another kind of value"),
        (json.dumps({"ballots": {"quorum_percent": 150}}), "out of range"),
    ],
)
def test_a_bad_change_is_invalid_argument_and_nothing_is_stored(coop: Coop, change: str, words: str) -> None:
    code, details = _status(lambda: _propose(coop, coop.board, change_json=change))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert words in details
    assert coop.stub.ListBallots(pb.ListBallotsRequest(), metadata=coop.board).ballots == []


def test_who_may_do_what(coop: Coop) -> None:
    change = json.dumps({"governance": {"thresholds": {"reject": 40}}})
    code, details = _status(lambda: _propose(coop, coop.member("dan"), change_json=change))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "only admitted members" in details
    code, _ = _status(lambda: coop.stub.ListBallots(pb.ListBallotsRequest()))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    code, _ = _status(lambda: coop.stub.GetBallot(pb.GetBallotRequest(ballot_id="nope"), metadata=coop.board))
    assert code == grpc.StatusCode.NOT_FOUND

    ballot = _propose(coop, coop.board, change_json=change)
    vote = pb.VoteRequest(ballot_id=ballot.ballot_id, choice="maybe")
    code, details = _status(lambda: coop.stub.Vote(vote, metadata=coop.member("alice")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "yes, no, abstain" in details
    vote = pb.VoteRequest(ballot_id=ballot.ballot_id, choice="yes")
    code, _ = _status(lambda: coop.stub.Vote(vote, metadata=coop.board))
    assert code == grpc.StatusCode.PERMISSION_DENIED  # the board does not vote
    code, _ = _status(lambda: coop.stub.Vote(vote, metadata=coop.member("dan")))
    assert code == grpc.StatusCode.PERMISSION_DENIED  # nor does an applicant
    code, _ = _status(lambda: coop.stub.SignPetition(pb.SignPetitionRequest(ballot_id=ballot.ballot_id),
                                                     metadata=coop.member("bob")))  # fmt: skip
    assert code == grpc.StatusCode.FAILED_PRECONDITION  # it is a ballot already, not a petition
    assert (
        coop.stub.GetBallot(pb.GetBallotRequest(ballot_id=ballot.ballot_id), metadata=coop.board).voted == 0
    )


def test_a_choice_among_alternatives_is_won_by_a_majority(coop: Coop) -> None:
    keys = {"equal shares": "equal", "by consumption": "pro_rata"}  # the second keeps today's key
    alternatives = [
        pb.Alternative(title=t, change_json=json.dumps({"ledger": {"key": k}})) for t, k in keys.items()
    ]
    ballot = _propose(coop, coop.board, title="Which allocation key", alternatives=alternatives)
    assert ballot.state == "open"
    assert [c.key for c in ballot.choices] == ["a1", "a2", "abstain"]
    for member, choice in (("alice", "a1"), ("bob", "a1"), ("carol", "abstain")):
        coop.stub.Vote(
            pb.VoteRequest(ballot_id=ballot.ballot_id, choice=choice), metadata=coop.member(member)
        )
    time.sleep(max(0.0, ballot.closes_at.ToSeconds() - time.time()) + 0.2)
    tally = json.loads(
        coop.stub.Tally(pb.TallyRequest(ballot_id=ballot.ballot_id), metadata=coop.board).tally_json
    )
    assert (tally["winner"], tally["change"]) == ("a1", {"ledger": {"key": "equal"}})
    assert tally["counts"] == {"a1": 2, "a2": 0, "abstain": 1}


@pytest.mark.parametrize(("field", "offset", "words"), [
    ("opens_at", -3600, "not in the past"), ("closes_at", 400 * 86_400, "at most 366 days"),
    ("closes_at", -10, "open for at least"),
])  # fmt: skip
def test_bad_times_are_invalid_argument(coop: Coop, field: str, offset: int, words: str) -> None:
    request = pb.ProposeRequest(
        title="A change", explanation="Because.", change_json=json.dumps({"coop": {"k_min": 4}})
    )
    getattr(request, field).FromSeconds(int(time.time()) + offset)
    code, details = _status(lambda: coop.stub.Propose(request, metadata=coop.board, timeout=300))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert words in details
    code, details = _status(lambda: coop.stub.Propose(request, metadata=coop.member("alice"), timeout=300))
    assert code == grpc.StatusCode.INVALID_ARGUMENT  # a member's petition takes no times at all
    assert "a petition opens when enough members sign it" in details


def test_ballots_are_listed_newest_first_a_page_at_a_time(coop: Coop) -> None:
    made = [
        _propose(
            coop, coop.board, title=f"Change {k}", change_json=json.dumps({"coop": {"k_min": k}})
        ).ballot_id
        for k in (3, 4, 6)
    ]
    first = coop.stub.ListBallots(pb.ListBallotsRequest(page_size=2), metadata=coop.board)
    assert len(first.ballots) == 2
    assert first.next_page_token
    rest = coop.stub.ListBallots(
        pb.ListBallotsRequest(page_size=2, page_token=first.next_page_token), metadata=coop.board
    )
    listed = [b.ballot_id for b in [*first.ballots, *rest.ballots]]
    assert sorted(listed) == sorted(made)
    assert len(set(listed)) == 3
    assert not rest.next_page_token
    assert all(not b.proposal_json for b in first.ballots)  # the index; GetBallot has the proposal
    stolen = pb.ListBallotsRequest(page_token=first.next_page_token)
    code, _ = _status(lambda: coop.stub.ListBallots(stolen, metadata=coop.member("alice")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT  # a token is the board's, for its own query
