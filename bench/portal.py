"""How long the portal takes to render each member page for a member with a year of readings.

Prints p50 and p95 per page and PASS when every page's p95 is under 100 ms.
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from starlette.testclient import TestClient

from coopfed.node.governance import admission
from coopfed.node.portal.app import create_app
from coopfed.node.runtime import init_node, open_node
from coopfed.node.server import portal_parts
from coopfed.node.settings import load_settings

BUDGET_MS = 100
PAGES = ("/consent", "/access", "/energy", "/data", "/neighbourhood", "/decides")
ROUNDS = 30


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        config = init_node(Path(tmp) / "coop", node_id="coop", name="Bench Co-op", listen="127.0.0.1:0")
        settings = load_settings(config)
        settings = replace(settings, policy=replace(settings.policy, engine="embedded", watch=False))
        with (
            open_node(settings) as node,
            TestClient(create_app(portal_parts(node), secure=False, origin="http://localhost")) as c,
        ):
            page = c.get("/signup")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            form = {"display_name": "Bench", "login": "bench@example.org", "password": "long bench pass"}
            code = admission.invite(node.store, node.decision_log, node.policy, 1, "board:bench")[1]
            c.post("/signup", data={**form, "csrf_token": token, "invitation": code})
            with node.store._read() as conn:
                (member,) = conn.execute("SELECT member_id FROM portal_accounts").fetchone()
            now = int(time.time()) // 1800 * 1800
            periods = np.arange(now - 365 * 86_400, now, 1800, dtype=np.int64)
            rng = np.random.default_rng(7)
            node.store.put_readings(
                member, [(ds, periods, rng.random(len(periods))) for ds in ("demand", "generation")]
            )
            failed = False
            for path in PAGES:
                c.get(path)  # warm
                times = []
                for _ in range(ROUNDS):
                    start = time.perf_counter()
                    assert c.get(path, follow_redirects=False).status_code == 200  # the page, not a redirect
                    times.append((time.perf_counter() - start) * 1000)
                p50, p95 = statistics.median(times), statistics.quantiles(times, n=20)[18]
                failed |= p95 >= BUDGET_MS
                print(f"{path:16} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")
    print(f"{'FAIL' if failed else 'PASS'}: every page's p95 under {BUDGET_MS} ms with a year of readings")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
