"""End-to-end upload over gRPC into SQLite: 30 days of half-hourly readings for 1,000 members.

Starts a real node process, registers the members, uploads through MemberService.UploadReadings
from several client threads, and prints readings/s and the node's peak RSS. The baseline, measured
in the same run, is the same readings written straight into a SQLite store with no gRPC in between.

    .venv/bin/python bench/ingest.py [--members 1000] [--days 30] [--clients 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np

from coopfed.node.client import bearer
from coopfed.node.model import HALF_HOUR, ConsentSettings
from coopfed.node.runtime import init_node
from coopfed.node.storage import SqliteStore
from coopfed.v1 import member_pb2, member_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATE = 250_000
TARGET_RSS_MB = 300


def readings(days: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    end = (int(time.time()) // 86_400 - 1) * 86_400
    periods = np.arange(end - days * 86_400, end, HALF_HOUR, dtype=np.int64)
    kwh = np.random.default_rng(seed).gamma(2.0, 0.12, len(periods))
    return periods, kwh


def start_node(folder: Path, synchronous: str) -> tuple[subprocess.Popen, str]:
    config = init_node(
        folder, node_id="bench", name="bench", listen="127.0.0.1:0", policies=ROOT / "policies"
    )
    env = {**os.environ, "COOPFED_STORAGE__SYNCHRONOUS": synchronous}
    proc = subprocess.Popen(
        [sys.executable, "-m", "coopfed.node.cli", "node", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = proc.stdout.readline()
    if "serving on port" not in line:
        proc.kill()
        raise SystemExit(f"node did not start: {line!r}")
    return proc, f"127.0.0.1:{line.split()[-1]}"


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def upload_all(address: str, tokens: list[str], days: int, clients: int) -> float:
    messages = []
    for i, token in enumerate(tokens):
        periods, kwh = readings(days, seed=i)
        messages.append(
            (token, member_pb2.ReadingBatch(dataset="demand", period_start_unix=periods, kwh=kwh))
        )
    with grpc.insecure_channel(address) as channel:
        stub = member_pb2_grpc.MemberServiceStub(channel)

        def send(item: tuple[str, member_pb2.ReadingBatch]) -> int:
            token, msg = item
            return stub.UploadReadings(iter([msg]), metadata=bearer(token)).inserted

        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            stored = sum(pool.map(send, messages))
        elapsed = time.perf_counter() - started
    assert stored == len(tokens) * days * 48, stored
    return elapsed


def baseline(folder: Path, members: int, days: int, synchronous: str) -> float:
    store = SqliteStore(folder / "baseline.db", synchronous=synchronous)
    for i in range(members):
        store.create_member(f"m{i}", f"m{i}", ConsentSettings(), admitted_by="bench")
    started = time.perf_counter()
    for i in range(members):
        periods, kwh = readings(days, seed=i)
        store.put_readings(f"m{i}", [("demand", periods, kwh)])
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--synchronous", default="FULL", choices=["NORMAL", "FULL"], help="as [storage]")
    args = parser.parse_args()
    total = args.members * args.days * 48
    with tempfile.TemporaryDirectory() as tmp:
        proc, address = start_node(Path(tmp) / "node", args.synchronous)
        try:
            with grpc.insecure_channel(address) as channel:
                stub = member_pb2_grpc.MemberServiceStub(channel)
                tokens = [
                    stub.Register(member_pb2.RegisterRequest(display_name=f"m{i}")).token
                    for i in range(args.members)
                ]
            elapsed = upload_all(address, tokens, args.days, args.clients)
            rss = peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
        direct = baseline(Path(tmp), args.members, args.days, args.synchronous)
    rate, direct_rate = total / elapsed, total / direct
    print(
        f"readings:               {total:,} ({args.members} members x {args.days} days x 48, "
        f"synchronous={args.synchronous})"
    )
    print(f"gRPC end to end:        {elapsed:6.2f} s  {rate:12,.0f} readings/s  (target >= {TARGET_RATE:,})")
    print(f"baseline, store direct: {direct:6.2f} s  {direct_rate:12,.0f} readings/s")
    print(f"ratio end-to-end / direct: {rate / direct_rate:.2f}")
    print(f"node peak RSS:          {rss:6.1f} MB (target < {TARGET_RSS_MB})")
    ok = rate >= TARGET_RATE and rss < TARGET_RSS_MB
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
