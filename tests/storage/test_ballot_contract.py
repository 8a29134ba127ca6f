"""The contract every ballot backend keeps: one vote per member, the box apart from the register
of who voted, nothing counted or read from the box before it closes, written-once tallies."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from coopfed.node.model import ConsentSettings
from coopfed.node.storage import AlreadyExists, NotFound, Store
from coopfed.node.storage.ballots import BallotRecord, BallotStore, Box, Closing
from coopfed.node.storage.governance import Conflict
from coopfed.node.storage.postgres import PostgresStore

from .backends import BACKENDS, BALLOT_BACKENDS

PROPOSAL = {"title": "Lower k", "choices": [{"key": "yes"}, {"key": "no"}]}
H = [f"{i:064x}" for i in range(10)]  # receipt hashes


@pytest.fixture(params=sorted(BALLOT_BACKENDS))
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, BallotStore]]:
    with BACKENDS[request.param](tmp_path) as store:
        for member in ("alice", "bob", "carol"):
            store.create_member(member, member, ConsentSettings(), admitted_by="test")
        yield store, BALLOT_BACKENDS[request.param](store)


def _open(ballots: BallotStore, ballot_id: str = "b1") -> BallotRecord:
    return ballots.create_ballot(BallotRecord(ballot_id, PROPOSAL, "board:x", 100, 100, 200), "", [])


def _counter(seen: list[tuple[Box, int]]):  # type: ignore[no-untyped-def]
    def count(record: BallotRecord, box: Box, eligible: int) -> Closing:
        seen.append((list(box), eligible))
        tally = {"counts": {c: sum(1 for _, x in box if x == c) for c in ("yes", "no")}}
        return Closing(tally, "d" * 64, [])

    return count


def test_a_ballot_is_stored_as_given_and_its_id_is_unique(stores: tuple[Store, BallotStore]) -> None:
    _, ballots = stores
    got = _open(ballots)
    assert (got.proposal, got.opens_unix, got.closes_unix) == (PROPOSAL, 100, 200)
    assert (got.voted, got.tally) == (0, None)
    with pytest.raises(AlreadyExists):
        _open(ballots)
    with pytest.raises(NotFound):
        ballots.get_ballot("nope")
    assert [b.ballot_id for b in ballots.list_ballots()] == ["b1"]


def test_one_member_one_vote(stores: tuple[Store, BallotStore]) -> None:
    _, ballots = stores
    _open(ballots)
    ballots.cast_vote("b1", "alice", H[0], "yes")
    with pytest.raises(Conflict):
        ballots.cast_vote("b1", "alice", H[1], "no")
    assert ballots.has_voted("b1", "alice")
    assert not ballots.has_voted("b1", "bob")
    assert ballots.get_ballot("b1").voted == 1


def test_the_box_stays_shut_until_the_ballot_closes_and_takes_no_vote_after(
    stores: tuple[Store, BallotStore],
) -> None:
    _, ballots = stores
    _open(ballots)
    ballots.cast_vote("b1", "alice", H[3], "yes")
    ballots.cast_vote("b1", "bob", H[1], "no")
    with pytest.raises(Conflict):
        ballots.box("b1")
    seen: list[tuple[Box, int]] = []
    closed = ballots.close_ballot("b1", 300, _counter(seen))
    assert seen == [([(H[1], "no"), (H[3], "yes")], 3)]  # by receipt hash, 3 admitted members
    assert closed.tally == {"counts": {"yes": 1, "no": 1}}
    assert closed.tally_digest == "d" * 64
    assert ballots.box("b1") == [(H[1], "no"), (H[3], "yes")]
    with pytest.raises(Conflict):
        ballots.cast_vote("b1", "carol", H[2], "yes")
    with pytest.raises(Conflict):
        ballots.close_ballot("b1", 301, _counter(seen))
    assert ballots.get_ballot("b1").tally == {"counts": {"yes": 1, "no": 1}}


def test_a_failed_count_closes_nothing(stores: tuple[Store, BallotStore]) -> None:
    _, ballots = stores
    _open(ballots)

    def broken(record: BallotRecord, box: Box, eligible: int) -> Closing:
        raise RuntimeError("count failed")

    with pytest.raises(RuntimeError):
        ballots.close_ballot("b1", 300, broken)
    assert ballots.get_ballot("b1").closed_unix is None
    ballots.cast_vote("b1", "alice", H[0], "yes")  # still open


def test_a_petition_opens_with_the_signature_that_makes_the_number(stores: tuple[Store, BallotStore]) -> None:
    _, ballots = stores
    ballots.create_ballot(BallotRecord("p1", PROPOSAL, "member:alice", 100), "alice", [])
    with pytest.raises(Conflict):
        ballots.cast_vote("p1", "alice", H[0], "yes")  # a petition takes no votes
    with pytest.raises(Conflict):
        ballots.sign_petition("p1", "alice", 3, 150, 250, [])
    assert ballots.sign_petition("p1", "bob", 3, 150, 250, []).opens_unix is None
    opened = ballots.sign_petition("p1", "carol", 3, 160, 260, [])
    assert (opened.signatures, opened.opens_unix, opened.closes_unix) == (3, 160, 260)
    with pytest.raises(Conflict):
        ballots.sign_petition("p1", "dave", 3, 170, 270, [])


def test_concurrent_votes_are_all_counted_once(stores: tuple[Store, BallotStore]) -> None:
    store, ballots = stores
    voters = [f"m{i}" for i in range(8)]
    for m in voters:
        store.create_member(m, m, ConsentSettings(), admitted_by="test")
    _open(ballots)
    errors: list[BaseException] = []

    def cast(i: int) -> None:
        for attempt in range(2):  # each voter tries twice, at once with the others
            try:
                ballots.cast_vote("b1", voters[i], f"{i * 2 + attempt:064x}", "yes")
            except Conflict:
                pass
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=cast, args=(i,)) for i in range(len(voters))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert ballots.get_ballot("b1").voted == len(voters)
    seen: list[tuple[Box, int]] = []
    ballots.close_ballot("b1", 300, _counter(seen))
    assert len(seen[0][0]) == len(voters)


def test_applications_are_kept_in_order(stores: tuple[Store, BallotStore]) -> None:
    _, ballots = stores
    _open(ballots)
    ballots.record_application(["b1"], "rev1", 10)
    ballots.record_application(["b1"], "rev1", 11)  # the same revision again: kept once
    ballots.record_application(["b1"], "rev2", 12)
    assert ballots.applications() == [("b1", "rev1", 10), ("b1", "rev2", 12)]


def test_postgresql_rows_pair_no_voter_with_a_choice_once_the_ballot_closes(tmp_path: Path) -> None:
    """A heap row keeps its place (ctid) and its writer's transaction (xmin): attack both."""
    store = BACKENDS["postgresql"](tmp_path)
    assert isinstance(store, PostgresStore)
    with store:
        ballots = BALLOT_BACKENDS["postgresql"](store)
        truth = {}
        for i, member in enumerate(("alice", "bob", "carol", "dave")):  # in name order, hashes falling
            store.create_member(member, member, ConsentSettings(), admitted_by="test")
            truth[member] = (H[9 - i], ("yes", "no")[i % 2])
        _open(ballots)
        for member, (receipt, choice) in truth.items():
            ballots.cast_vote("b1", member, receipt, choice)
        with psycopg.connect(store.url, autocommit=True) as db:
            # while the ballot is open the attack works: each vote's two rows share a transaction
            assert _paired(db, "xmin") == truth
            assert _paired(db, "ctid") == truth
            ballots.close_ballot("b1", 300, _counter([]))
            assert _paired(db, "ctid") != truth  # rows in key order: names rising, hashes rising
            for table in ("ballot_voters", "ballot_box"):
                assert len({x for (x,) in db.execute(f"SELECT xmin::text FROM {table}")}) == 1  # noqa: S608
        assert ballots.box("b1") == sorted(truth.values())


def _paired(db: psycopg.Connection, column: str) -> dict[str, tuple[str, str]]:
    """Voters matched with box rows by a system column: the same xmin, or the same rank of ctid."""
    order = "ORDER BY ctid"
    voters = db.execute(f"SELECT {column}::text, member_id FROM ballot_voters {order}").fetchall()  # noqa: S608
    box = db.execute(f"SELECT {column}::text, receipt_hash, choice FROM ballot_box {order}").fetchall()  # noqa: S608
    if column == "xmin":
        by_xmin = {x: (h, c) for x, h, c in box}
        return {m: by_xmin[x] for x, m in voters if x in by_xmin}
    return {m: (h, c) for (_, m), (_, h, c) in zip(voters, box, strict=True)}
