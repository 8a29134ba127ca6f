"""Federation and forecast state reads in the node's database, as the node makes them per call:
pinned peers' keys (every peer call), this node's revocation list (before every message of an
aggregates stream) and the latest forecast (each nudge stream's poll).

Baselines, measured in the same run on the same file: one `os.stat` (what a look at the former
JSON files cost when nothing changed) and one bare `SELECT` on a plain sqlite3 connection (the
floor of any database read). PASS when every read stays within its per-call budget.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from coopfed.federation.keys import KeyRing
from coopfed.federation.tls import TlsIdentity
from coopfed.node.federation.manifest import Manifest
from coopfed.node.federation.state import FederationState, PeerRecord
from coopfed.node.forecast.store import ForecastStore, StoredForecast, WindowRecord
from coopfed.node.storage import SqliteStore
from coopfed.node.storage.federation_sqlite import SqlFederationStore
from coopfed.node.storage.forecast_sqlite import SqlForecastIndex

BUDGET_US = 500.0  # per read: a peer call or a streamed message costs milliseconds besides
T0 = 1704067200


def per_call_us(fn: Callable[[], object], seconds: float) -> float:
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            fn()
        calls += 100
    return 1e6 * elapsed / calls


def _manifest(coop_id: str) -> Manifest:
    ring = KeyRing()
    ring.rotate()
    return Manifest(
        coop_id=coop_id, name=coop_id, aims=("dpv:CommunityEnergyForecasting",),
        governance={"legal_form": "cooperative", "decision_making": "one_member_one_vote",
                    "consent_model": "traffic_light", "min_group_size": 5, "policy_review": "board"},
        policy_revision="r", policy_hash="ab" * 32, jwks=ring.jwks(),
        tls_certificate_pem=TlsIdentity.create(coop_id).cert_pem,
        endpoints={"public": f"{coop_id}:1", "peer": f"{coop_id}:2"},
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--peers", type=int, default=20)
    parser.add_argument("--revocations", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=1.0, help="per figure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SqliteStore(Path(tmp) / "node.db", synchronous="NORMAL") as db:
        state = FederationState(SqlFederationStore(db), "coop-a")
        now = int(time.time())
        for i in range(args.peers):
            state.pin(PeerRecord(_manifest(f"coop-{i}"), now, now, True, ("aligned",)))
        for i in range(args.revocations):
            state.revoke(f"grant-{i}", reason="board decision", expires_at=now + 3600)
        forecasts = ForecastStore(Path(tmp) / "forecast", SqlForecastIndex(db))
        periods = tuple(T0 + 1800 * i for i in range(96))
        windows = (WindowRecord("peak", T0, T0 + 3600, False),)
        forecasts.save_forecast(
            StoredForecast(
                "coop-a", T0, T0, periods, (1.0,) * 96, (0.5,) * 96, 8, 60.0, 1.2, windows, "pooled", ()
            )
        )
        bare = sqlite3.connect(Path(tmp) / "node.db")
        figures = {
            "os.stat (baseline)": per_call_us(lambda: os.stat(db.path), args.seconds),
            "bare SELECT (baseline)": per_call_us(lambda: bare.execute("SELECT 1").fetchone(), args.seconds),
            "pinned peers' keys": per_call_us(state.peer_trust, args.seconds),
            f"revocation list ({args.revocations})": per_call_us(state.revocations, args.seconds),
            "latest forecast": per_call_us(forecasts.latest, args.seconds),
        }
        bare.close()
    stat_us, select_us = figures["os.stat (baseline)"], figures["bare SELECT (baseline)"]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load} (shared: figures vary with load)")
    print(f"{args.peers} pinned peers, {args.revocations} revocations; budget {BUDGET_US:.0f} us per read")
    failed = False
    for name, us in figures.items():
        if "baseline" in name:
            print(f"  {name:<28} {us:9.1f} us")
            continue
        ok = us <= BUDGET_US
        failed |= not ok
        ratios = f"x{us / stat_us:6.1f} stat, x{us / select_us:5.1f} bare SELECT"
        print(f"  {name:<28} {us:9.1f} us  ({ratios})  {'PASS' if ok else 'FAIL'}")
    print(f"{'FAIL' if failed else 'PASS'}: every read under {BUDGET_US:.0f} us")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
