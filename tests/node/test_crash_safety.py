"""A node killed with SIGKILL in the middle of uploads loses no acknowledged reading; a node whose
PostgreSQL server goes away answers UNAVAILABLE and carries on when it returns."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest

from coopfed.node.client import bearer
from coopfed.node.runtime import init_node
from coopfed.node.settings import load_settings
from coopfed.node.storage.configured import open_store
from coopfed.v1 import member_pb2, member_pb2_grpc

from ..pgserver import PgServer, binaries, fresh_database
from .conftest import POLICIES, running_node

HH = 1800
PER_UPLOAD = 500  # 400 uploads span eleven years of half-hours


def start(config: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "coopfed.node.cli", "node", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    line = proc.stdout.readline()
    assert "serving on port" in line, line
    return proc, f"127.0.0.1:{line.split()[-1]}"


def kill_mid_calls(
    proc: subprocess.Popen, call: Callable[[int], object]
) -> tuple[list[int], list[grpc.StatusCode]]:
    """Make call(0), call(1), ... from a client thread and SIGKILL the node once 20 were
    acknowledged. Returns the numbers acknowledged and the codes of the calls that failed."""
    acknowledged: list[int] = []
    failures: list[grpc.StatusCode] = []
    enough = threading.Event()

    def client() -> None:
        for n in range(400):
            try:
                call(n)
            except grpc.RpcError as exc:
                failures.append(exc.code())
                return
            acknowledged.append(n)
            if len(acknowledged) == 20:
                enough.set()

    thread = threading.Thread(target=client)
    thread.start()
    assert enough.wait(120), f"the calls stopped before the kill: {failures}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    thread.join(30)
    return acknowledged, failures


def stored_calls(config: Path, env: dict[str, str], member_ids: list[str]) -> dict[int, int]:
    """Call n stores kWh n: how many readings of each call the reopened store holds."""
    store = open_store(load_settings(config, environ=env))
    try:
        stored: dict[int, int] = {}
        for member_id in member_ids:
            for batch in store.iter_readings(member_id):
                for value, count in zip(*np.unique(batch.kwh, return_counts=True), strict=True):
                    stored[int(value)] = stored.get(int(value), 0) + int(count)
        return stored
    finally:
        store.close()


def assert_all_acknowledged_kept(
    stored: dict[int, int], acknowledged: list[int], failures: list[grpc.StatusCode], whole: int
) -> None:
    """Every acknowledged call stored whole (`whole` readings), and at most the one in flight besides."""
    assert failures == [grpc.StatusCode.UNAVAILABLE], "the call in flight fails only because the node died"
    assert set(acknowledged) <= set(stored), "an acknowledged call is missing"
    assert all(count == whole for count in stored.values()), "a call was stored in part"
    assert max(stored) <= max(acknowledged) + 1, "at most the one call in flight may be stored unacknowledged"


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_mid_upload_loses_no_acknowledged_reading(tmp_path, backend):
    env = {"COOPFED_STORAGE__URL": fresh_database()} if backend == "postgresql" else {}
    config = init_node(tmp_path, node_id="crash", name="crash", listen="127.0.0.1:0", policies=POLICIES)
    proc, address = start(config, env)
    first = (int(time.time()) // HH - 400 * PER_UPLOAD - 48) * HH
    with grpc.insecure_channel(address) as channel:
        stub = member_pb2_grpc.MemberServiceStub(channel)
        reg = stub.Register(member_pb2.RegisterRequest(display_name="Ada"))

        def upload(n: int) -> None:
            start_at = first + n * PER_UPLOAD * HH
            msg = member_pb2.ReadingBatch(
                dataset="demand",
                period_start_unix=np.arange(start_at, start_at + PER_UPLOAD * HH, HH).tolist(),
                kwh=[float(n)] * PER_UPLOAD,
            )
            stub.UploadReadings(iter([msg]), metadata=bearer(reg.token))

        acknowledged, failures = kill_mid_calls(proc, upload)
    stored = stored_calls(config, env, [reg.member_id])
    assert_all_acknowledged_kept(stored, acknowledged, failures, PER_UPLOAD)


@pytest.mark.integration
def test_a_lost_database_server_is_unavailable_and_the_node_recovers(tmp_path):
    bin_dir = binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL server not installed")
    server = PgServer(bin_dir)
    try:
        server.start()
        env = {"COOPFED_STORAGE__URL": server.fresh_database()}
        with running_node(tmp_path / "n", env=env) as (node, address), grpc.insecure_channel(address) as ch:
            stub = member_pb2_grpc.MemberServiceStub(ch)
            reg = stub.Register(member_pb2.RegisterRequest(display_name="Ada"))
            first = (int(time.time()) // HH - 10 * 48) * HH

            def upload(day: int) -> None:
                msg = member_pb2.ReadingBatch(
                    dataset="demand",
                    period_start_unix=list(range(first + day * 48 * HH, first + (day + 1) * 48 * HH, HH)),
                    kwh=[0.5] * 48,
                )
                stub.UploadReadings(iter([msg]), metadata=bearer(reg.token), timeout=60)

            upload(0)
            server.kill()
            with pytest.raises(grpc.RpcError) as lost:
                upload(1)
            assert lost.value.code() == grpc.StatusCode.UNAVAILABLE
            server.restart()
            deadline = time.monotonic() + 60
            while True:  # as a client retries UNAVAILABLE; the pool reconnects with backoff
                try:
                    upload(1)
                    break
                except grpc.RpcError as exc:
                    codes = exc.code(), time.monotonic() < deadline
                assert codes == (grpc.StatusCode.UNAVAILABLE, True), "the node did not recover"
                time.sleep(0.5)
            held = sum(batch.periods.size for batch in node.store.iter_readings(reg.member_id))
            assert held == 96, "an acknowledged upload was lost"
    finally:
        server.stop()
