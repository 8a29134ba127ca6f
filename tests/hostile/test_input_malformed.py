"""Bytes that are not a protobuf message, and readings no meter could give, are refused with
INVALID_ARGUMENT by a real node over a real socket; the node keeps serving and stores nothing.

The raw calls skip serialisation (`channel.unary_unary(path)` with no serializer sends the bytes
as they are), which is what a hostile or broken client can do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from coopfed.node.client import bearer
from coopfed.v1 import member_pb2, member_pb2_grpc
from tests.hostile.test_upload_atomicity import HH, _node, _register, stored
from tests.node.conftest import serving

pytestmark = pytest.mark.integration

GARBAGE = {
    "truncated field": b"\x0a\xff\x01abc",  # field 1, 255 bytes long, three given
    "invalid UTF-8 in a string": b"\x0a\x02\xff\xfe",
    "end-group tag without a start": b"\x0c",
}

MEMBER = "/coopfed.v1.MemberService/"


def _raw_calls(channel: grpc.Channel, token: str) -> dict[str, Callable[[bytes], object]]:
    """One raw call of each kind of method, sending the given bytes as the (only) request."""
    md = bearer(token)
    unary = channel.unary_unary(MEMBER + "Register")
    consent = channel.unary_unary(MEMBER + "SetConsent")
    upload = channel.stream_unary(MEMBER + "UploadReadings")
    export = channel.unary_stream(MEMBER + "ExportMyData")
    return {
        "Register": lambda data: unary(data, timeout=10),
        "SetConsent": lambda data: consent(data, metadata=md, timeout=10),
        "UploadReadings": lambda data: upload(iter([data]), metadata=md, timeout=10),
        "ExportMyData": lambda data: list(export(data, metadata=md, timeout=10)),
    }


def attack_malformed_bytes(folder: Path) -> dict[str, grpc.StatusCode]:
    """Every garbage payload to every kind of method: the status each got, keyed by both names."""
    codes: dict[str, grpc.StatusCode] = {}
    with serving(_node(folder)) as (_, address):
        _, token = _register(address)
        with grpc.insecure_channel(address) as channel:
            for method, call in _raw_calls(channel, token).items():
                for name, data in GARBAGE.items():
                    try:
                        call(data)
                        codes[f"{method}: {name}"] = grpc.StatusCode.OK
                    except grpc.RpcError as exc:
                        codes[f"{method}: {name}"] = exc.code()
            # still serving, and a well-formed call still works
            member_pb2_grpc.MemberServiceStub(channel).Register(
                member_pb2.RegisterRequest(display_name="Ada"), timeout=10
            )
    return codes


def attack_reading_above_any_household(folder: Path) -> tuple[grpc.StatusCode, str, int]:
    """A reading of 1e300 kWh (which once made the totals infinite): status, field, stored count."""
    config = _node(folder)
    with serving(config) as (_, address):
        member_id, token = _register(address)
        start = (int(time.time()) // HH - 96) * HH
        msg = member_pb2.ReadingBatch(
            dataset="demand", period_start_unix=[start, start + HH], kwh=[0.5, 1e300]
        )
        with grpc.insecure_channel(address) as channel:
            try:
                member_pb2_grpc.MemberServiceStub(channel).UploadReadings(
                    iter([msg]), metadata=bearer(token), timeout=10
                )
                code, field = grpc.StatusCode.OK, ""
            except grpc.RpcError as exc:
                code, field = exc.code(), exc.details() or ""
    return code, field, stored(config, member_id)


def test_malformed_bytes_get_invalid_argument_from_every_kind_of_method(tmp_path: Path) -> None:
    codes = attack_malformed_bytes(tmp_path / "node")
    assert len(codes) == 4 * len(GARBAGE)
    assert {name: code for name, code in codes.items() if code is not grpc.StatusCode.INVALID_ARGUMENT} == {}


def test_a_reading_above_what_a_household_can_use_is_refused_by_row(tmp_path: Path) -> None:
    code, details, held = attack_reading_above_any_household(tmp_path / "node")
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("batches[0].kwh[1]: 1e+300 is more than a household")
    assert held == 0
