"""LedgerService: statements for members and the board; settlement and the journal for the board."""

from __future__ import annotations

import asyncio

from google.protobuf.timestamp_pb2 import Timestamp

from coopfed.node.auth import caller
from coopfed.node.convert import timestamp
from coopfed.node.errors import InvalidArgument
from coopfed.node.ledger import books
from coopfed.node.ledger.run import settle_span
from coopfed.node.ledger.settle import HALF_HOUR
from coopfed.node.ledger.statement import Statement
from coopfed.node.members import decision_log
from coopfed.node.paging import Page
from coopfed.node.rpc import rpc
from coopfed.node.runtime import Node
from coopfed.node.storage.ledger import JournalLine
from coopfed.v1 import ledger_pb2 as pb
from coopfed.v1 import ledger_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LedgerService"].full_name


class LedgerService(pb_grpc.LedgerServiceServicer):
    def __init__(self, node: Node) -> None:
        self.node = node

    @rpc
    async def GetStatement(self, request, context):
        start, end = _span(request)
        made = await asyncio.to_thread(
            books.statement_for, self.node, caller(), request.member_id, start, end
        )
        return _statement(made)

    @rpc
    async def Settle(self, request, context):
        books.board_only(caller(), "settle the ledger")
        start, end = _span(request)
        done = await asyncio.to_thread(settle_span, self.node, start, end)
        return pb.SettleResponse(
            run_id=done.run_id, decision_id=done.decision_id, revision=done.revision,
            key_title=done.terms.key_title, periods=done.periods, settled=done.settled,
            corrected=done.corrected, provisional=done.provisional, members=done.members,
            terms_changed=done.terms_changed,
        )  # fmt: skip

    @rpc
    async def ListJournal(self, request, context):
        books.board_only(caller(), "read the journal")
        start, end = _span(request)
        page = Page(
            decision_log(self.node),
            request,
            caller=caller().id,
            default=books.DEFAULT_PAGE,
            maximum=books.MAX_PAGE,
        )
        lines, token = await asyncio.to_thread(
            books.journal_page, self.node, start, end, request.member_id, page
        )
        return pb.ListJournalResponse(entries=[_entry(line) for line in lines], next_page_token=token)


def _span(request: pb.GetStatementRequest | pb.SettleRequest | pb.ListJournalRequest) -> tuple[int, int]:
    """[start, end) in unix seconds: both given, on the half-hour, end after start."""
    for name in ("start", "end"):
        if not request.HasField(name):
            raise InvalidArgument(f"{name}: required", code="ledger.span", field=name)
    start, end = _seconds(request.start, "start"), _seconds(request.end, "end")
    if end <= start:
        raise InvalidArgument("end: must be after start", code="ledger.span", field="end")
    return start, end


def _seconds(at: Timestamp, name: str) -> int:
    if at.nanos or at.seconds % HALF_HOUR or at.seconds < 0:
        raise InvalidArgument(f"{name}: must be on the half-hour", code="ledger.span", field=name)
    return at.seconds


def _statement(made: Statement) -> pb.Statement:
    fields = made.to_dict()
    return pb.Statement(
        **{k: v for k, v in fields.items() if k not in ("period_start", "period_end")},
        start=timestamp(made.period_start),
        end=timestamp(made.period_end),
    )


def _entry(line: JournalLine) -> pb.JournalEntry:
    return pb.JournalEntry(
        transaction=line.txn, period_start=timestamp(line.period_start), status=line.status,
        corrects=line.corrects or 0, run_id=line.run_id, account=line.account, kind=line.kind,
        pence=line.pence, wh=line.wh,
    )  # fmt: skip
