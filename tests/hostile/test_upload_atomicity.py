"""An upload stream that does not end normally stores nothing: cancelled by the client, past its
deadline, its client SIGKILLed, or still open when the node stops. A complete stream stores all.

Each attack is a plain function (bench/hostile.py runs them too) returning how many readings of
the broken stream were stored; the tests assert it is none.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from coopfed.node.client import bearer
from coopfed.node.runtime import init_node
from coopfed.node.settings import load_settings
from coopfed.node.storage import SqliteStore
from coopfed.v1 import member_pb2, member_pb2_grpc
from tests.node.conftest import POLICIES, serving

pytestmark = pytest.mark.integration

HH = 1800
PER_MESSAGE = 50
MESSAGES = 20  # sent before the stream stalls: 1,000 readings the node must not keep


def messages(
    count: int = MESSAGES, stall: threading.Event | None = None
) -> Iterator[member_pb2.ReadingBatch]:
    """`count` one-day batches of readings, then (with `stall`) a stream left open until it is set."""
    first = (int(time.time()) // HH - count * PER_MESSAGE - 48) * HH
    for n in range(count):
        start = first + n * PER_MESSAGE * HH
        yield member_pb2.ReadingBatch(
            dataset="demand",
            period_start_unix=list(range(start, start + PER_MESSAGE * HH, HH)),
            kwh=[0.25] * PER_MESSAGE,
        )
    if stall is not None:
        stall.wait(30)


def stored(config: Path, member_id: str) -> int:
    """Readings the node's database holds for the member, read after the node is gone or idle."""
    with SqliteStore(load_settings(config).path("node.db"), create=False) as store:
        return sum(batch.periods.size for batch in store.iter_readings(member_id))


def _node(folder: Path) -> Path:
    return init_node(folder, node_id="coop-a", name="a", listen="127.0.0.1:0", policies=POLICIES)


def _register(address: str) -> tuple[str, str]:
    with grpc.insecure_channel(address) as channel:
        reply = member_pb2_grpc.MemberServiceStub(channel).Register(
            member_pb2.RegisterRequest(display_name="Ada")
        )
    return reply.member_id, reply.token


def _stalled_upload(
    address: str, token: str, *, timeout: float | None, cancel_after: float | None
) -> grpc.StatusCode:
    """Send MESSAGES batches, leave the stream open; cancel it after `cancel_after` seconds."""
    stall = threading.Event()
    with grpc.insecure_channel(address) as channel:
        stub = member_pb2_grpc.MemberServiceStub(channel)
        future = stub.UploadReadings.future(messages(stall=stall), metadata=bearer(token), timeout=timeout)
        if cancel_after is not None:
            time.sleep(cancel_after)
            future.cancel()
        try:
            future.result()
            return grpc.StatusCode.OK
        except grpc.FutureCancelledError:
            return grpc.StatusCode.CANCELLED
        except grpc.RpcError as exc:
            return exc.code()
        finally:
            stall.set()


def attack_cancel_mid_stream(folder: Path) -> int:
    config = _node(folder)
    with serving(config) as (_, address):
        member_id, token = _register(address)
        code = _stalled_upload(address, token, timeout=None, cancel_after=1.0)
        assert code is grpc.StatusCode.CANCELLED
        time.sleep(0.5)  # the node has heard of the cancel and finished with the call
    return stored(config, member_id)


def attack_deadline_mid_stream(folder: Path) -> int:
    config = _node(folder)
    with serving(config) as (_, address):
        member_id, token = _register(address)
        code = _stalled_upload(address, token, timeout=1.0, cancel_after=None)
        assert code is grpc.StatusCode.DEADLINE_EXCEEDED
        time.sleep(0.5)
    return stored(config, member_id)


_CLIENT = """
import sys, threading
import grpc
from coopfed.node.client import bearer
from coopfed.v1 import member_pb2_grpc
from tests.hostile.test_upload_atomicity import messages
channel = grpc.insecure_channel(sys.argv[1])
stub = member_pb2_grpc.MemberServiceStub(channel)
def sent():
    yield from messages()
    print("sent", flush=True)
    threading.Event().wait()
stub.UploadReadings(sent(), metadata=bearer(sys.argv[2]))
"""


def attack_client_sigkill_mid_stream(folder: Path) -> int:
    config = _node(folder)
    with serving(config) as (_, address):
        member_id, token = _register(address)
        root = Path(__file__).resolve().parents[2]
        client = subprocess.Popen(
            [sys.executable, "-c", _CLIENT, address, token], stdout=subprocess.PIPE, text=True, cwd=root
        )
        try:
            assert client.stdout is not None
            assert client.stdout.readline().strip() == "sent"
            time.sleep(0.5)  # the batches have reached the node
        finally:
            os.kill(client.pid, signal.SIGKILL)
            client.wait(10)
        time.sleep(1.0)
    return stored(config, member_id)


def attack_node_stops_with_stream_open(folder: Path) -> int:
    """The node stops (grace of one second) while a stream is open: the stream is cut off."""
    config = _node(folder)
    outcome: list[grpc.StatusCode] = []
    with serving(config) as (_, address):
        member_id, token = _register(address)
        uploading = threading.Thread(
            target=lambda: outcome.append(_stalled_upload(address, token, timeout=20, cancel_after=None))
        )
        uploading.start()
        time.sleep(1.0)
    uploading.join(30)
    assert outcome
    assert outcome[0] is not grpc.StatusCode.OK
    return stored(config, member_id)


ATTACKS = {
    "upload cancelled mid-stream": attack_cancel_mid_stream,
    "upload past its deadline mid-stream": attack_deadline_mid_stream,
    "upload client SIGKILLed mid-stream": attack_client_sigkill_mid_stream,
    "node stopped with an upload open": attack_node_stops_with_stream_open,
}


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
def test_a_broken_upload_stream_stores_nothing(tmp_path: Path, attack) -> None:
    assert attack(tmp_path / "node") == 0


def test_a_complete_stream_stores_every_reading(tmp_path: Path) -> None:
    config = _node(tmp_path / "node")
    with serving(config) as (_, address):
        member_id, token = _register(address)
        with grpc.insecure_channel(address) as channel:
            stub = member_pb2_grpc.MemberServiceStub(channel)
            summary = stub.UploadReadings(messages(), metadata=bearer(token), timeout=30)
    assert summary.inserted == MESSAGES * PER_MESSAGE
    assert stored(config, member_id) == MESSAGES * PER_MESSAGE
