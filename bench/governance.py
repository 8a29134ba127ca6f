"""Governance speed: releasing an aggregate under a grant, the decision log, and policy decisions.

- release: one month of half-hourly aggregate demand for N members in a handful of consent
  profiles, through the node's release path (per-profile totals, one consent decision per
  profile, k-suppression, the access log). Baseline, same run: summing every consenting member's
  readings one member at a time, the way a release without running totals would.
- decision log: appending entries (masked, hash-chained, one transaction per batch) and verifying.
- decisions: one governance decision (three stages) on the embedded engine and, when an OPA binary
  is found, on a real OPA server.

    .venv/bin/python bench/governance.py [--members 500] [--days 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from coopfed.federation.grants import Granularity
from coopfed.node.decisionlog import verify
from coopfed.node.governance.release import FetchSpec, authenticate_grant
from coopfed.node.governance.service import _chunks, parts
from coopfed.node.model import HALF_HOUR, ConsentLevel, ConsentSettings, Flow
from coopfed.node.policy.consent import ConsentAnswers
from coopfed.node.runtime import Node, init_node, open_node
from coopfed.node.settings import load_settings
from coopfed.node.storage.records import (
    DataRequestRecord,
    Decision,
    Organisation,
    OrganisationProfile,
    RequestSpec,
    RequestState,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
JAN = 1704067200
DAY = 86_400
PROFILES = [
    ConsentSettings(level=ConsentLevel.GREEN),
    ConsentSettings(level=ConsentLevel.RED),
    ConsentSettings(level=ConsentLevel.AMBER, choices={"demand": frozenset({Flow.THIRD_PARTY})}),
    ConsentSettings(persona="research_friendly"),
    ConsentSettings(persona="community_first"),
    ConsentSettings(level=ConsentLevel.AMBER, choices={"generation": frozenset({Flow.THIRD_PARTY})}),
]


def populate(node: Node, members: int, days: int) -> list[str]:
    periods = JAN + HALF_HOUR * np.arange(48 * days, dtype=np.int64)
    rng = np.random.default_rng(7)
    ids = []
    for i in range(members):
        member_id = f"m{i:05d}"
        node.store.create_member(member_id, "bench", PROFILES[i % len(PROFILES)], admitted_by="bench")
        node.store.put_readings(member_id, [("demand", periods, rng.gamma(2.0, 0.12, periods.size))])
        ids.append(member_id)
    return ids


def grant(node: Node, days: int) -> str:
    node.governance.create_organisation(
        Organisation("org-bench", OrganisationProfile("Bench Uni", "university"), datetime.now(UTC)), []
    )
    spec = RequestSpec(
        ("demand",), ("kwh", "member_count"), Granularity.AGGREGATE, JAN, JAN + days * DAY, "third_party",
        "dpv:AcademicResearch", "bench",
    )  # fmt: skip
    result = {"outcome": "approve", "proposed": "approve", "grant": {"ttl_days": 30, "min_group_size": 5}}
    decision = Decision("dec-bench", node.policy.revision, result, datetime.now(UTC))
    record = DataRequestRecord(
        "req-bench", "org-bench", spec, RequestState.APPROVED, decision.decided_at, decision
    )
    issued, _ = parts(node).requests._grant(record, result, int(time.time()))
    node.governance.create_request(record, issued, None, [])
    return issued.token


def release_seconds(node: Node, token: str) -> tuple[float, int]:
    node.consent = ConsentAnswers(node.policy, node.decision_log)  # cold: each profile asked again
    g = authenticate_grant(node.credentials, node.governance, token).claims["grant"]
    start = time.perf_counter()
    chunks = list(_chunks(parts(node).releases, g, FetchSpec()))
    return time.perf_counter() - start, chunks[-1].summary.members_released


def baseline_seconds(node: Node, ids: list[str], days: int) -> float:
    """Per-member sums: consent per member, then every reading of every consenting member."""
    start = time.perf_counter()
    total = np.zeros(48 * days)
    for member_id in ids:
        member = node.store.get_member(member_id)
        if not node.consent.allows(
            member.settings.policy_input(), "demand", "third_party", "dpv:AcademicResearch"
        ):
            continue
        for chunk in node.store.iter_readings(member_id, "demand", JAN, JAN + days * DAY):
            total[(chunk.periods - JAN) // HALF_HOUR] += chunk.kwh
    return time.perf_counter() - start


def decision_log_figures(node: Node, n: int = 5000) -> tuple[float, float]:
    log = node.decision_log
    events = [log.event("bench/path", {"i": i, "member": f"m{i}"}, {"ok": True}, "rev") for i in range(n)]
    start = time.perf_counter()
    for i in range(0, n, 100):
        log.append(*events[i : i + 100])
    appended = n / (time.perf_counter() - start)
    start = time.perf_counter()
    report = verify(node.governance.decision_log(), head=node.governance.decision_log_head())
    checked = report.entries / (time.perf_counter() - start)
    assert report.ok
    return appended, checked


def decision_ms(node: Node) -> dict[str, float]:
    from tests.governance.cases import DECISION_PATH, decision_input

    figures = {}
    engines = {"embedded": node.policy}
    try:
        from coopfed.node.policy import load_policies
        from coopfed.node.policy.opa import OpaEngine
        from tests.conftest import find_opa

        binary = find_opa()
        if binary:
            engines["opa"] = OpaEngine.with_sidecar(binary, load_policies(ROOT / "policies"))
    except ImportError:
        pass
    question = decision_input()
    for name, engine in engines.items():
        engine.evaluate(DECISION_PATH, question)
        start = time.perf_counter()
        for _ in range(50):
            engine.evaluate(DECISION_PATH, question)
        figures[name] = (time.perf_counter() - start) / 50 * 1000
        if name == "opa":
            engine.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = init_node(
            Path(folder) / "node",
            node_id="bench",
            name="bench",
            listen="127.0.0.1:0",
            policies=ROOT / "policies",
        )
        with open_node(load_settings(config, environ={"COOPFED_STORAGE__SYNCHRONOUS": "NORMAL"})) as node:
            start = time.perf_counter()
            ids = populate(node, args.members, args.days)
            print(f"setup: {args.members} members x {args.days} days in {time.perf_counter() - start:.1f} s")
            token = grant(node, args.days)
            seconds, released = release_seconds(node, token)
            base = baseline_seconds(node, ids, args.days)
            cells = 48 * args.days
            shape = f"{cells} cells, {released} members released, {len(PROFILES)} profiles"
            print(f"release: {shape}: {seconds * 1000:.0f} ms")
            print(
                f"baseline (per-member sums): {base * 1000:.0f} ms; release is {base / seconds:.1f}x faster"
            )
            appended, checked = decision_log_figures(node)
            print(f"decision log: {appended:,.0f}/s appended (batches of 100), {checked:,.0f}/s verified")
            for name, ms in decision_ms(node).items():
                print(f"governance decision ({name}): {ms:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
