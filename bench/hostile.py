"""Every attack of tests/hostile against real nodes: tried, refused, crashes, partial writes, entries lost.

The upload and input attacks are imported from the tests and run here as plain functions; the
other attack files run under pytest in a subprocess, each test one attack (refused when it passes).
Also times 40,000 one-reading messages in one upload (the once-quadratic duplicate check).
Run: .venv/bin/python bench/hostile.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coopfed.node.client import bearer  # noqa: E402
from coopfed.v1 import member_pb2, member_pb2_grpc  # noqa: E402
from tests.hostile import test_input_malformed as malformed  # noqa: E402
from tests.hostile import test_upload_atomicity as upload  # noqa: E402
from tests.node.conftest import serving  # noqa: E402

IMPORTED = {"test_upload_atomicity.py", "test_input_malformed.py"}


def tiny_messages(folder: Path, count: int = 40_000) -> float:
    """Seconds for one upload of `count` one-reading messages, all stored."""
    with serving(upload._node(folder)) as (_, address):
        _, token = upload._register(address)
        first = (int(time.time()) // upload.HH - count - 48) * upload.HH
        msgs = [
            member_pb2.ReadingBatch(dataset="demand", period_start_unix=[first + i * upload.HH], kwh=[0.1])
            for i in range(count)
        ]
        with grpc.insecure_channel(address) as channel:
            started = time.perf_counter()
            summary = member_pb2_grpc.MemberServiceStub(channel).UploadReadings(
                iter(msgs), metadata=bearer(token), timeout=300
            )
            assert summary.inserted == count
            return time.perf_counter() - started


def main() -> int:
    tried = refused = crashes = partial = 0
    with tempfile.TemporaryDirectory() as tmp:
        for n, (name, attack) in enumerate(upload.ATTACKS.items()):
            tried += 1
            try:
                kept = attack(Path(tmp) / f"u{n}")
            except Exception as exc:  # noqa: BLE001 - an attack that breaks the node is a crash
                crashes += 1
                print(f"  CRASH {name}: {exc!r}")
                continue
            partial += kept > 0
            refused += kept == 0
            print(f"  {'refused' if kept == 0 else 'PARTIAL'}: {name} ({kept} readings kept)")
        codes = malformed.attack_malformed_bytes(Path(tmp) / "m")
        tried += len(codes)
        refused += sum(code is grpc.StatusCode.INVALID_ARGUMENT for code in codes.values())
        print(
            f"  malformed bytes: {sum(c is grpc.StatusCode.INVALID_ARGUMENT for c in codes.values())}"
            f" of {len(codes)} got INVALID_ARGUMENT"
        )
        code, _, kept = malformed.attack_reading_above_any_household(Path(tmp) / "big")
        tried += 1
        refused += code is grpc.StatusCode.INVALID_ARGUMENT and kept == 0
        partial += kept > 0
        print(f"  reading of 1e300 kWh: {code.name}, {kept} readings kept")
        seconds = tiny_messages(Path(tmp) / "tiny")
    others = sorted(p for p in (ROOT / "tests/hostile").glob("test_*.py") if p.name not in IMPORTED)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", *map(str, others)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    outcomes = [
        line.split()[0]
        for line in run.stdout.splitlines()
        if line.split()[:1] in (["PASSED"], ["FAILED"], ["ERROR"], ["SKIPPED"])
    ]
    skipped = outcomes.count("SKIPPED")  # e.g. no mounting here: not tried, and said so
    run_here = len(outcomes) - skipped
    tried += run_here
    refused += outcomes.count("PASSED")
    crashes += outcomes.count("ERROR")
    print(f"  other attack files: {outcomes.count('PASSED')} of {run_here} refused, {skipped} skipped")
    others_failed = tried - refused - crashes - partial  # got through some other way
    print(f"40,000 one-reading messages in one upload: {seconds:.1f} s")
    print(
        f"attacks tried {tried}, refused {refused}, crashes {crashes}, partial writes {partial}, "
        f"other failures {others_failed}, not tried here {skipped}"
    )
    ok = refused == tried
    print("PASS" if ok else "FAIL", "(target: every attack refused, 0 crashes, 0 partial writes, 0 lost)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
