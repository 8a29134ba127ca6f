"""Ballots: casting votes one by one and counting them at the close, against bare SQL inserts.

N admitted members each cast one vote through the node's domain function (admission check,
receipt, the register of who voted and the box in one durable transaction) on the node's real
SQLite file. The baseline, measured in the same run on a file of its own with the same
durability, is the two bare INSERTs per vote in one transaction each. Targets: a vote costs under
5 times the baseline at the median (the durable commit is most of both; on the shared 2-core
machine its latency moves with the load), and counting and closing a ballot of N votes (tally,
decision log, WAL checkpoint) takes under 2 s.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from coopfed.node.auth import Principal
from coopfed.node.ballots import voting
from coopfed.node.model import ConsentSettings
from coopfed.node.runtime import init_node, open_node
from coopfed.node.services import ballots_of
from coopfed.node.settings import load_settings
from coopfed.node.storage.ballots import BallotRecord

VOTE_TARGET_RATIO = 5.0
CLOSE_TARGET_S = 2.0


def _baseline(folder: Path, n: int) -> list[float]:
    conn = sqlite3.connect(folder / "baseline.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE voters (b TEXT, m TEXT, PRIMARY KEY (b, m)) WITHOUT ROWID")
    conn.execute("CREATE TABLE box (b TEXT, h TEXT, c TEXT, PRIMARY KEY (b, h)) WITHOUT ROWID")
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO voters VALUES ('b', ?)", (f"m-{i}",))
        conn.execute("INSERT INTO box VALUES ('b', ?, 'yes')", (f"{i:064x}",))
        conn.execute("COMMIT")
        times.append(time.perf_counter() - t0)
    conn.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = init_node(Path(tmp) / "coop", node_id="bench", name="Bench", listen="127.0.0.1:0")
        with open_node(load_settings(config)) as node:
            members = [f"m-{i:05d}" for i in range(args.members)]
            for m in members:
                node.store.create_member(m, m, ConsentSettings(), admitted_by="bench")
            now = int(time.time())
            change = {"key": "yes", "title": "-", "patch": {"coop": {"k_min": 4}}, "changes": []}
            proposal = {
                "title": "Bench", "explanation": "-", "kind": "yes_no", "alternatives": [change],
                "choices": [{"key": k, "title": k} for k in ("yes", "no", "abstain")],
                "rules": voting.rules_of(node.policy_data).to_json(), "base_revision": node.policy.revision,
            }  # fmt: skip
            node.ballots.create_ballot(
                BallotRecord("bench", proposal, "board:bench", now, now, now + 3600), "", []
            )
            ballots = ballots_of(node)
            times = []
            for i, m in enumerate(members):
                t0 = time.perf_counter()
                ballots.vote(Principal("member", m), "bench", ("yes", "no", "abstain")[i % 3], now + 1)
                times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            closed = ballots.tally("bench", now + 3600)
            close_s = time.perf_counter() - t0
        base = _baseline(Path(tmp), args.members)
    vote_ms, base_ms = statistics.median(times) * 1e3, statistics.median(base) * 1e3
    p95 = statistics.quantiles(times, n=20)[-1] * 1e3
    assert closed.tally is not None
    assert closed.tally["voted"] == args.members
    print(f"{args.members:,} votes: median {vote_ms:.2f} ms, p95 {p95:.2f} ms per vote")
    print(f"baseline (two bare INSERTs, one transaction, same durability): median {base_ms:.2f} ms")
    print(f"ratio to baseline: {vote_ms / base_ms:.2f}x")
    print(f"count and close {args.members:,} votes: {close_s:.3f} s")
    ok = vote_ms < VOTE_TARGET_RATIO * base_ms and close_s < CLOSE_TARGET_S
    verdict = "PASS" if ok else "FAIL"
    print(f"targets: vote < {VOTE_TARGET_RATIO:g}x baseline, close < {CLOSE_TARGET_S:g} s: {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
