"""The serving node's malloc settings, in a fresh interpreter each: a large block freed goes
back to the system, where glibc left to itself keeps it after the first."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from coopfed.node.heap import tune_malloc

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

tuned = tune_malloc() if sys.argv[1] == "tune" else []
block = bytearray(8 * 2**20)  # mmapped, then freed: glibc's threshold rises past 8 MB
del block
before = rss_mb()
block = bytearray(8 * 2**20)  # from the heap now, unless the threshold is held; kept when freed,
#                                 as glibc raised its trim threshold with it
del block
print(json.dumps({"tuned": tuned, "kept_mb": rss_mb() - before}))
"""


def probe(mode: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=environ, check=True
    )
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_freed_large_block_goes_back_to_the_system():
    left_alone, tuned = probe("leave"), probe("tune")
    assert left_alone["kept_mb"] > 7  # the control: glibc keeps the block
    assert tuned["tuned"] == ["MALLOC_MMAP_THRESHOLD_", "MALLOC_ARENA_MAX"]
    assert tuned["kept_mb"] < 1


def test_what_the_operator_set_is_kept():
    got = probe("tune", MALLOC_ARENA_MAX="4")
    assert got["tuned"] == ["MALLOC_MMAP_THRESHOLD_"]
