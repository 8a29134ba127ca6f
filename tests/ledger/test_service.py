"""LedgerService over a real node and real gRPC: members read only their own statement, the board
settles, reads any statement and pages through the journal; bad spans are INVALID_ARGUMENT."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from coopfed.node.client import bearer
from coopfed.node.credentials import issue_board_token
from coopfed.node.ledger.run import ledger_of
from coopfed.node.runtime import Node
from coopfed.v1 import ledger_pb2 as pb
from coopfed.v1 import ledger_pb2_grpc as pb_grpc

from ..node.conftest import running_node
from .conftest import DAY, T0, add_member


def _at(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


DAY_SPAN = {"start": _at(T0), "end": _at(T0 + DAY)}


class Books:
    def __init__(self, node: Node, channel: grpc.Channel) -> None:
        self.node = node
        self.stub = pb_grpc.LedgerServiceStub(channel)

    def member(self, member_id: str) -> tuple:
        return bearer(self.node.credentials.issue_member_token(member_id))

    def board(self) -> tuple:
        return bearer(issue_board_token(self.node.node_id, self.node.keys, "ada", 3600))


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Books]:
    with running_node(
        tmp_path_factory.mktemp("ledger"), "coop", {"COOPFED_STORAGE__SYNCHRONOUS": "NORMAL"}
    ) as (
        node,
        address,
    ):
        add_member(node, "ann", demand=1.0)
        add_member(node, "bea", demand=0.5)
        add_member(node, "sol", demand=0.2, generation=1.2, export=1.0)
        with grpc.insecure_channel(address) as channel:
            books = Books(node, channel)
            done = books.stub.Settle(pb.SettleRequest(**DAY_SPAN), metadata=books.board())
            assert (done.periods, done.settled, done.provisional, done.members) == (48, 48, 0, 3)
            assert done.decision_id
            assert done.revision
            yield books


def _code(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()


def test_a_member_reads_their_own_statement(books: Books) -> None:
    mine = books.stub.GetStatement(pb.GetStatementRequest(**DAY_SPAN), metadata=books.member("ann"))
    named = books.stub.GetStatement(
        pb.GetStatementRequest(member_id="ann", **DAY_SPAN), metadata=books.member("ann")
    )
    assert mine == named
    assert mine.account == "ann"
    # 1.0 kWh exported per half-hour, shared 2:1 between ann and bea
    assert (mine.local_bought_wh, mine.grid_import_wh, mine.local_sold_wh) == (48 * 667, 48 * 333, 0)
    assert mine.net_pence == mine.local_bought_pence + mine.grid_import_pence
    assert mine.saved_pence == mine.grid_only_pence - mine.net_pence > 0
    assert 0 < mine.coop_local_share < 1
    assert (mine.start.seconds, mine.end.seconds) == (T0, T0 + DAY)


def test_another_members_statement_is_refused(books: Books) -> None:
    request = pb.GetStatementRequest(member_id="sol", **DAY_SPAN)
    assert _code(lambda: books.stub.GetStatement(request, metadata=books.member("ann"))) == (
        grpc.StatusCode.PERMISSION_DENIED
    )


def test_only_the_board_settles_and_reads_the_journal(books: Books) -> None:
    ann = books.member("ann")
    assert _code(lambda: books.stub.Settle(pb.SettleRequest(**DAY_SPAN), metadata=ann)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert _code(lambda: books.stub.ListJournal(pb.ListJournalRequest(**DAY_SPAN), metadata=ann)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert _code(lambda: books.stub.GetStatement(pb.GetStatementRequest(**DAY_SPAN))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )


def test_the_board_reads_any_members_statement_and_the_coops(books: Books) -> None:
    sol = books.stub.GetStatement(pb.GetStatementRequest(member_id="sol", **DAY_SPAN), metadata=books.board())
    assert (sol.account, sol.local_sold_wh, sol.credits_pence) == ("sol", 48 * 1000, 48 * 18)
    coop = books.stub.GetStatement(pb.GetStatementRequest(**DAY_SPAN), metadata=books.board())
    assert coop.account == "coop"
    assert coop.local_bought_wh == 48 * 1000
    request = pb.GetStatementRequest(member_id="nobody", **DAY_SPAN)
    assert (
        _code(lambda: books.stub.GetStatement(request, metadata=books.board())) == grpc.StatusCode.NOT_FOUND
    )


def test_the_journal_pages_through_every_posting_in_balance(books: Books) -> None:
    entries: list[pb.JournalEntry] = []
    token = ""
    while True:
        page = books.stub.ListJournal(
            pb.ListJournalRequest(page_size=100, page_token=token, **DAY_SPAN), metadata=books.board()
        )
        entries += page.entries
        if not (token := page.next_page_token):
            break
    expected = list(ledger_of(books.node).journal(T0, T0 + DAY))
    assert [(e.transaction, e.account, e.kind, e.pence, e.wh) for e in entries] == [
        (x.txn, x.account, x.kind, x.pence, x.wh) for x in expected
    ]
    balance: dict[int, int] = defaultdict(int)
    for e in entries:
        balance[e.transaction] += e.pence
    assert len(balance) == 48
    assert set(balance.values()) == {0}


@pytest.mark.parametrize(
    "request_",
    [
        pb.GetStatementRequest(start=_at(T0 + 60), end=_at(T0 + DAY)),  # not on the half-hour
        pb.GetStatementRequest(start=_at(T0 + DAY), end=_at(T0)),  # ends before it starts
        pb.GetStatementRequest(end=_at(T0 + DAY)),  # no start
        pb.GetStatementRequest(start=Timestamp(seconds=T0, nanos=5), end=_at(T0 + DAY)),
    ],
)
def test_a_bad_span_is_invalid_argument(books: Books, request_: pb.GetStatementRequest) -> None:
    assert _code(lambda: books.stub.GetStatement(request_, metadata=books.member("ann"))) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


@pytest.mark.parametrize("page", [{"page_size": -1}, {"page_token": "x"}, {"page_token": "100"}])
def test_a_bad_page_is_invalid_argument(books: Books, page: dict) -> None:
    request = pb.ListJournalRequest(**DAY_SPAN, **page)
    assert (
        _code(lambda: books.stub.ListJournal(request, metadata=books.board()))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
