"""`coopfed demo --once`, the README's first command, runs the three-co-op federation end to end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_demo_federates_forecasts_and_nudges(tmp_path):
    demo = subprocess.run(
        [sys.executable, "-m", "coopfed.node.cli", "demo", "--once", "--dir", str(tmp_path / "demo")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    out = demo.stdout
    assert demo.returncode == 0, demo.stderr[-3000:]
    for coop in ("riverside", "fellside", "market-town"):
        assert re.search(rf"  {coop}: \d\d members joined and uploaded [\d,]+ readings", out)
    assert "riverside pinned fellside" in out
    assert "refused market-town: Market Town Energy Ltd is not aligned" in out
    assert "fellside granted riverside" in out
    assert "trained pooled model v1 on riverside, fellside" in out
    assert "no one else receives them" in out
