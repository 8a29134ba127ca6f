"""Impact analysis over a 100,000-entry decision log: batched, deduplicated replay against a naive baseline.

The log is synthetic but shaped as a node writes it: consent decisions per profile, governance
decisions on data requests, organisation assessments, and board records that are not replayed.
The head revision raises the approval threshold and narrows a persona, so decisions change.
Target: the whole log in under 30 s on this machine (2 cores). Baselines, measured in the same
run on a sample and scaled to the log: every entry evaluated one by one on both revisions, on
the embedded engine and on OPA's REST API (no batches, no deduplication).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import find_opa  # noqa: E402

from coopfed.node.policy.engine import make_engine  # noqa: E402
from coopfed.node.policy.impact import ImpactAnalysis, ImpactReport, LogEntry  # noqa: E402
from coopfed.node.policy.loader import load_policies  # noqa: E402
from coopfed.node.policy.replay import make_replayer  # noqa: E402

LEVELS = ["green", "amber", "red"]
PERSONAS = ["", "", "", "community_first", "research_friendly", "privacy_first", "generation_sharer"]
DATASETS = ["demand", "generation", "export"]
FLOWS = ["internal", "member_to_member", "coop_to_coop", "third_party", "open_data"]
PURPOSES = [
    "dpv:ServiceProvision",
    "dpv:CommunityEnergyForecasting",
    "dpv:CommunityEnergyBenchmarking",
    "dpv:AcademicResearch",
    "dpv:NonCommercialResearch",
    "dpv:PublicBenefit",
    "dpv:CommercialResearch",
    "dpv:Marketing",
]
ORG_TYPES = ["university", "council", "charity", "company", "cooperative", "data_broker"]
YEAR = 31_622_400


def consent_input(rng: random.Random) -> dict[str, Any]:
    choices = {d: rng.sample(FLOWS, rng.randint(0, 3)) for d in rng.sample(DATASETS, rng.randint(0, 3))}
    profile = {"level": rng.choice(LEVELS), "persona": rng.choice(PERSONAS), "choices": choices}
    return {
        "profile": profile,
        "dataset": rng.choice(DATASETS),
        "flow": rng.choice(FLOWS),
        "purpose": rng.choice(PURPOSES),
    }


def governance_input(rng: random.Random, now: int) -> dict[str, Any]:
    # Mostly periods the co-op holds data for; one in ten runs past it and is refused with dates.
    start = 1_641_038_400 + 1800 * rng.randint(0, 17_000)
    length = rng.randint(48, 8_000) if rng.random() < 0.9 else rng.randint(20_000, 40_000)
    request = {
        "datasets": rng.sample(DATASETS, rng.randint(1, 2)),
        "fields": ["kwh", "member_count"],
        "granularity": rng.choice(["aggregate", "aggregate", "aggregate", "individual"]),
        "period": {"start": start, "end": start + 1800 * length},
        "flow": "third_party",
        "purpose": {"code": rng.choice(PURPOSES), "description": f"sha256:{rng.getrandbits(256):064x}"},
        "commitments": rng.sample(
            ["results_shared_with_members", "no_onward_sharing", "delete_after_use"], 2
        ),
    }
    catalogue = {
        d: {
            "held": True,
            "period": {"start": 1_640_995_200, "end": now},
            "consenting_members": rng.randint(0, 40),
        }
        for d in DATASETS
    }
    assessment = {
        "score": rng.randint(10, 100),
        "verified": rng.random() < 0.8,
        "expires_at": now + rng.randint(-5, 300) * 86_400,
        "dimensions": {},
        "reasons": [],
    }
    return {
        "request": request,
        "catalogue": catalogue,
        "organisation": {"id": "org-1", "assessment": assessment},
        "now": now,
    }


def assessment_input(rng: random.Random, now: int) -> dict[str, Any]:
    organisation = {
        "type": rng.choice(ORG_TYPES),
        "commitments": rng.sample(
            ["not_for_profit", "open_publication", "ethics_approval", "data_minimisation"], 2
        ),
        "verified": rng.random() < 0.7,
        "track_record": {"completed_grants": rng.randint(0, 6), "revoked_grants": rng.randint(0, 1) // 1},
    }
    return {"organisation": organisation, "now": now}


def synthetic_log(n: int, revision: str, governance: float = 0.08, seed: int = 7) -> list[LogEntry]:
    """By default 80% consent, 8% governance decisions, 4% assessments, 8% board records.

    A node logs a consent decision per consent profile, question and revision, and one
    governance decision per data request, so consent decisions dominate a real log.
    """
    rng = random.Random(seed)
    entries = []
    for i in range(n):
        now = 1_700_000_000 + 60 * i
        roll = rng.random()
        if roll < 0.88 - governance:
            path, value = "coopfed/consent/decision", consent_input(rng)
        elif roll < 0.88:
            path, value = "coopfed/governance/decision", governance_input(rng, now)
        elif roll < 0.92:
            path, value = "coopfed/governance/organisation/assessment", assessment_input(rng, now)
        else:
            path, value = "coopfed/governance/review", {"request_id": f"req-{i}", "reviewer": "pseud:ab"}
        entries.append(LogEntry(str(uuid.UUID(int=rng.getrandbits(128))), path, value, None, revision))
    return entries


def head_policies(base: Path, into: Path) -> Path:
    """The base policies with a stricter approval threshold and a narrower persona."""
    head = into / "head"
    shutil.copytree(base, head)
    data = json.loads((head / "data.json").read_text())
    data["governance"]["thresholds"]["approve"] = 75
    data["consent"]["personas"]["research_friendly"]["purposes"]["third_party"] = ["dpv:AcademicResearch"]
    (head / "data.json").write_text(json.dumps(data, indent=2))
    return head


def baseline(base: Path, head: Path, entries: list[LogEntry], kind: str) -> float:
    """Seconds per entry, evaluating every entry on both revisions one by one (no batches, no dedupe)."""
    engines = [make_engine(kind, load_policies(d), opa_binary=find_opa() or "") for d in (base, head)]
    replayable = set(load_policies(base).entrypoints)
    started = time.perf_counter()
    for entry in entries:
        if entry.path in replayable:
            for engine in engines:
                engine.evaluate(entry.path, entry.input)
    for engine in engines:
        engine.close()
    return (time.perf_counter() - started) / len(entries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--baseline-sample", type=int, default=1_000)
    parser.add_argument("--engine", default="auto", choices=["auto", "wasm", "opa", "embedded"])
    parser.add_argument("--governance-share", type=float, default=0.08, help="governance decisions' share")
    args = parser.parse_args()
    base = ROOT / "policies"
    with tempfile.TemporaryDirectory() as tmp:
        head = head_policies(base, Path(tmp))
        revision = load_policies(base).revision
        entries = synthetic_log(args.entries, revision, args.governance_share)
        print(f"log: {len(entries):,} entries {dict(Counter(e.path for e in entries))}")
        started = time.perf_counter()
        base_r = make_replayer(base, args.engine, find_opa())
        head_r = make_replayer(head, args.engine, find_opa())
        compiled = time.perf_counter() - started
        engine = base_r.name
        report = ImpactReport("policies", "head", base_r.policies.revision, head_r.policies.revision, engine)
        try:
            ImpactAnalysis(base_r, head_r, report).run(entries)
        finally:
            base_r.close()
            head_r.close()
        total = compiled + report.seconds
        sample = entries[: args.baseline_sample]
        naive = {kind: baseline(base, head, sample, kind) * len(entries) for kind in ("embedded", "opa")}
    print(f"engine {engine}: compile both revisions {compiled:.1f} s, replay {report.seconds:.1f} s")
    print(
        f"replayed {report.replayed:,} ({report.distinct_inputs:,} distinct inputs), "
        f"changed {report.changed:,}"
    )
    for path, impact in sorted(report.paths.items()):
        print(
            f"  {path}: {impact.replayed:,} replayed, {impact.changed:,} changed {dict(impact.transitions)}"
        )
    print(
        f"impact analysis of {len(entries):,} entries: {total:.1f} s ({len(entries) / total:,.0f} entries/s)"
    )
    for kind, seconds in naive.items():
        print(
            f"baseline ({kind}, one by one, both revisions; from {args.baseline_sample:,} entries): "
            f"{seconds:.1f} s; impact analysis is {seconds / total:.1f}x faster"
        )
    ok = total < 30
    print(f"target: under 30 s for {len(entries):,} entries: {total:.1f} s {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
