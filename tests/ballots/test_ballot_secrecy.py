"""Nobody can read from the node's store how a member voted: open the SQLite file and try."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from coopfed.v1 import ballot_pb2 as pb

from .conftest import MEMBERS, Coop

pytestmark = pytest.mark.integration

CHOICES = {"alice": "yes", "bob": "no", "carol": "abstain"}


def _tables(db: sqlite3.Connection) -> dict[str, list[str]]:
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {n: [c[1] for c in db.execute(f"PRAGMA table_info('{n}')")] for n in names}


def test_a_members_vote_cannot_be_recovered_from_the_database(coop: Coop) -> None:
    request = pb.ProposeRequest(
        title="Approve at 65", explanation="Approve more requests without the board.",
        change_json=json.dumps({"governance": {"thresholds": {"approve": 65}}}),
    )  # fmt: skip
    request.closes_at.FromSeconds(int(time.time()) + 600)
    ballot = coop.stub.Propose(request, metadata=coop.board, timeout=300)
    receipts = {}
    for member in MEMBERS:  # in the order of their names: an order a store might keep
        reply = coop.stub.Vote(
            pb.VoteRequest(ballot_id=ballot.ballot_id, choice=CHOICES[member]), metadata=coop.member(member)
        )
        receipts[member] = reply.receipt_hash
        time.sleep(1.1)  # a second apart: a stored time would tell them apart
    coop.node.decision_log.flush()

    db = sqlite3.connect(coop.folder / coop.node.settings.storage.path)
    db.execute("PRAGMA wal_checkpoint(FULL)")  # everything written is in the main file now
    tables = _tables(db)
    # the box holds receipt hashes and choices, and nothing that names or orders the voters
    assert tables["ballot_box"] == ["ballot_id", "receipt_hash", "choice"]
    assert tables["ballot_voters"] == ["ballot_id", "member_id"]
    for table in ("ballot_box", "ballot_voters"):
        with pytest.raises(sqlite3.OperationalError, match="rowid"):
            db.execute(f"SELECT rowid FROM {table}")  # noqa: S608 - no hidden insertion order
    stored = db.execute("SELECT receipt_hash, choice FROM ballot_box").fetchall()  # in stored order
    assert [h for h, _ in stored] == sorted(receipts.values())  # ordered by random hash, not by time
    # no row of any table holds a member's id together with a receipt hash or a ballot choice
    for table in tables:
        for row in db.execute(f"SELECT * FROM '{table}'"):  # noqa: S608
            text = json.dumps(row)
            for member in MEMBERS:
                if f'"{member}"' in text or f"member:{member}" in text:
                    assert not any(h in text for h in receipts.values()), (table, row)
                    assert table != "ballot_box", row
    # the decision log records no vote at all (only the ballot's opening)
    paths = {json.loads(e)["path"] for e in coop.node.governance.decision_log()}
    assert not any("vote" in p for p in paths)
    db.close()

    # the board sees who voted, not how: its answer carries no box before the close
    seen = coop.stub.GetBallot(pb.GetBallotRequest(ballot_id=ballot.ballot_id), metadata=coop.board)
    assert (seen.voted, seen.tally_json) == (3, "")
