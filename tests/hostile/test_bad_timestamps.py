"""Timestamps no calendar holds (beyond year 9999, before year 1, nanos out of range) sent to a
real node's ListDecisions are INVALID_ARGUMENT naming the field, never INTERNAL; it keeps serving."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from coopfed.v1 import governance_pb2 as pb
from tests.governance.conftest import start

pytestmark = pytest.mark.integration

BAD = {
    "after year 9999": Timestamp(seconds=2**62),
    "before year 1": Timestamp(seconds=-(2**62)),
    "nanos past a second": Timestamp(seconds=0, nanos=2_000_000_000),
    "negative nanos": Timestamp(seconds=0, nanos=-1),
}


def test_bad_timestamps_are_invalid_argument(tmp_path: Path) -> None:
    for gov in start(tmp_path):
        board = gov.board()
        for field in ("since", "until"):
            for bad in BAD.values():
                request = pb.ListDecisionsRequest(**{field: bad})
                with pytest.raises(grpc.RpcError) as refused:
                    gov.review.ListDecisions(request, metadata=board, timeout=10)
                assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, (field, bad)
                assert field in refused.value.details()
                assert len(refused.value.details()) < 200
        good = pb.ListDecisionsRequest(since=Timestamp(seconds=0))
        assert gov.review.ListDecisions(good, metadata=board, timeout=10).decisions == []
