"""Per-decision latency of the consent policy: embedded (regopy) against a real OPA server."""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import regopy

from coopfed.node.policy import load_policies
from coopfed.node.policy.consent import CONSENT_PATH
from coopfed.node.policy.embedded import EmbeddedEngine
from coopfed.node.policy.opa import OpaEngine
from coopfed.node.policy.sidecar import OpaSidecar

ROOT = Path(__file__).resolve().parent.parent


def questions() -> list[dict[str, Any]]:
    """Every level and persona against every dataset, flow and a few purposes."""
    profiles = [
        {"level": lv, "persona": "", "choices": {"demand": ["coop_to_coop"]}}
        for lv in ("green", "amber", "red")
    ]
    profiles += [
        {"level": "red", "persona": p, "choices": {}} for p in ("community_first", "research_friendly")
    ]
    flows = ["internal", "member_to_member", "coop_to_coop", "third_party", "open_data"]
    purposes = ["dpv:ServiceProvision", "dpv:AcademicResearch", "dpv:Marketing"]
    return [
        {"profile": pr, "dataset": ds, "flow": fl, "purpose": pu}
        for pr, ds, fl, pu in itertools.product(profiles, ("demand", "generation"), flows, purposes)
    ]


def per_call_us(
    fn: Callable[[dict[str, Any]], object], inputs: list[dict[str, Any]], calls: int
) -> list[float]:
    """Microseconds per call, one sample per call, after a warm-up pass."""
    for q in inputs:
        fn(q)
    samples = []
    for q in itertools.islice(itertools.cycle(inputs), calls):
        start = time.perf_counter()
        fn(q)
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def recompile_per_query(policies: Any) -> Callable[[dict[str, Any]], object]:
    """The slow way, as a baseline: build an interpreter and compile the modules for every query."""
    data = policies.data

    def decide(q: dict[str, Any]) -> object:
        rego = regopy.Interpreter()
        rego.add_data(data)
        for name, source in policies.modules.items():
            rego.add_module(name, source)
        rego.set_input(q)
        return rego.query("x = data.coopfed.consent.decision")

    return decide


def report(name: str, samples: list[float]) -> float:
    """Print mean, median and p99; return the median, which a shared machine disturbs least."""
    mean = statistics.fmean(samples)
    cuts = statistics.quantiles(samples, n=100)
    p50, p99 = cuts[49], cuts[98]
    print(f"{name:<28} mean {mean:8.0f} us   p50 {p50:8.0f} us   p99 {p99:8.0f} us   ({len(samples)} calls)")
    return p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2_000, help="decisions per engine")
    parser.add_argument("--opa", default=os.environ.get("COOPFED_OPA") or str(ROOT / ".tools/bin/opa"))
    args = parser.parse_args()
    opa_binary = args.opa if os.access(args.opa, os.X_OK) else shutil.which("opa")
    if opa_binary is None:
        raise SystemExit("no OPA binary: run `make install` or pass --opa")

    policies = load_policies(ROOT / "policies")
    inputs = questions()
    embedded = EmbeddedEngine(policies)
    with OpaSidecar(opa_binary) as server:
        opa = OpaEngine(server.url, policies, token=server.token)
        for q in inputs:  # the engines must agree before their speed means anything
            assert embedded.evaluate(CONSENT_PATH, q) == opa.evaluate(CONSENT_PATH, q), q
        print(f"consent decision, {len(inputs)} distinct inputs, policy revision {policies.revision[:12]}")
        emb = report(
            "embedded (compiled once)",
            per_call_us(lambda q: embedded.evaluate(CONSENT_PATH, q), inputs, args.calls),
        )
        rest = report(
            "opa (REST, one session)",
            per_call_us(lambda q: opa.evaluate(CONSENT_PATH, q), inputs, args.calls),
        )
        slow = report(
            "embedded, recompile/query", per_call_us(recompile_per_query(policies), inputs, args.calls // 10)
        )
        opa.close()
    embedded.close()
    print(f"ratio of medians, opa / embedded:            {rest / emb:6.2f}x")
    print(f"ratio of medians, recompile / compiled once: {slow / emb:6.2f}x")


if __name__ == "__main__":
    main()
