"""A writer killed with SIGKILL loses no acknowledged upload and leaves no upload half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coopfed.node.model import ConsentLevel, ConsentSettings
from coopfed.node.storage import Store

from ..pgserver import fresh_database
from .crash_writer import opened, upload

WRITER = Path(__file__).with_name("crash_writer.py")
GREEN = ConsentSettings(level=ConsentLevel.GREEN)


def held(store: Store, i: int) -> list[bool]:
    """For each batch of upload i: is it all there, exactly? Raises if it is there only in part."""
    member, batches = upload(i)
    found = []
    for dataset, periods, kwh in batches:
        stored = {}
        for chunk in store.iter_readings(member, dataset, int(periods[0]), int(periods[-1]) + 1):
            stored.update(zip(chunk.periods.tolist(), chunk.kwh.tolist(), strict=True))
        assert len(stored) in (0, periods.size), f"upload {i} {dataset}: {len(stored)} of {periods.size}"
        assert not stored or stored == dict(zip(periods.tolist(), kwh.tolist(), strict=True))
        found.append(bool(stored))
    return found


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["sqlite FULL", "sqlite NORMAL", "postgresql"])
def test_sigkill_mid_write_loses_no_acknowledged_upload(tmp_path: Path, backend: str) -> None:
    kind, _, synchronous = backend.partition(" ")
    target = fresh_database() if kind == "postgresql" else str(tmp_path / "node.db")
    child = subprocess.Popen(
        [sys.executable, str(WRITER), target, synchronous or "FULL"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        acknowledged = [int(child.stdout.readline()) for _ in range(25)]
    finally:
        os.kill(child.pid, signal.SIGKILL)  # while it is busy with the next upload
        child.wait()
    assert acknowledged == list(range(25))
    with opened(target) as store:  # SQLite recovers from its write-ahead log
        committed = 0
        while held(store, committed) == [True, True]:
            committed += 1
        assert committed >= 25, "an acknowledged upload was lost"
        assert held(store, committed) == [False, False], "an upload was half-written"
        assert held(store, committed + 1) == [False, False]
        got = store.profile_totals([GREEN.profile_id], "demand")
        readings = [c for m in range(4) for c in store.iter_readings(f"m{m}", "demand")]
        assert got.member_count.sum() == sum(c.periods.size for c in readings) == committed * 3_000
        assert np.isclose(got.kwh_sum.sum(), sum(c.kwh.sum() for c in readings))
