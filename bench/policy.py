"""Per-decision latency on every engine: consent and governance decisions, one by one and in batches.

Each figure is printed beside the baselines measured in the same run (the embedded engine,
OPA's REST API, one call per decision) with the ratio, and PASS/FAIL against the targets for
the default engine: a consent decision under 0.3 ms p50, a governance decision under 1 ms p50.

    .venv/bin/python bench/policy.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coopfed.node.policy import load_policies
from coopfed.node.policy.consent import CONSENT_PATH
from coopfed.node.policy.embedded import EmbeddedEngine
from coopfed.node.policy.opa import OpaEngine
from coopfed.node.policy.regotest import find_tool
from coopfed.node.policy.sidecar import OpaSidecar
from coopfed.node.policy.wasm import WasmEngine
from coopfed.node.settings import PolicySection

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.governance.cases import DECISION_PATH, decision_input  # noqa: E402

# What the default engine ("auto") runs here: wasm where OPA is installed, as on this machine.
DEFAULT = "wasm" if PolicySection().engine == "auto" and find_tool("opa") else PolicySection().engine
if DEFAULT == "auto":
    DEFAULT = "embedded"


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


def report(name: str, samples: list[float]) -> float:
    """Print mean, median and p99; return the median, which a shared machine disturbs least."""
    mean = statistics.fmean(samples)
    cuts = statistics.quantiles(samples, n=100)
    p50, p99 = cuts[49], cuts[98]
    print(
        f"  {name:<34} mean {mean:8.0f} us   p50 {p50:8.0f} us   p99 {p99:8.0f} us   ({len(samples)} calls)"
    )
    return p50


def batch_us(engine: Any, path: str, inputs: list[Any], rounds: int) -> list[float]:
    """Microseconds per decision of evaluate_many over the whole input list, one sample per round."""
    engine.evaluate_many(path, inputs)
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        engine.evaluate_many(path, inputs)
        samples.append((time.perf_counter() - start) * 1e6 / len(inputs))
    return samples


def compare(
    title: str, path: str, inputs: list[Any], engines: dict[str, Any], calls: int, target_us: float
) -> bool:
    """One decision on every engine, one by one and batched; PASS where the default meets the target."""
    reference = [engines["opa"].evaluate(path, q) for q in inputs]
    for name, engine in engines.items():  # the engines must agree before their speed means anything
        assert [engine.evaluate(path, q) for q in inputs] == reference, name
        assert engine.evaluate_many(path, inputs) == reference, name
    print(f"{title}, {len(inputs)} distinct inputs")
    rounds = max(calls // len(inputs), 5)
    p50, batched = {}, {}
    for name, e in engines.items():
        p50[name] = report(
            f"{name}, one by one", per_call_us(lambda q, e=e: e.evaluate(path, q), inputs, calls)
        )
    for name, e in engines.items():
        batched[name] = report(f"{name}, batch of {len(inputs)}", batch_us(e, path, inputs, rounds))
    ours = p50[DEFAULT]
    for base in ("embedded", "opa"):
        print(f"  {DEFAULT} one by one vs {base} one by one (baseline): {p50[base] / ours:6.1f}x faster")
        ratio = p50[base] / batched[DEFAULT]
        print(f"  {DEFAULT} batched vs {base} one by one (baseline):    {ratio:6.1f}x faster")
    ok = ours < target_us
    print(f"  target: p50 under {target_us:.0f} us on the default engine ({DEFAULT}): {ours:.0f} us "
          f"{'PASS' if ok else 'FAIL'}")  # fmt: skip
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2_000, help="decisions per engine")
    parser.add_argument("--opa", default=os.environ.get("COOPFED_OPA") or str(ROOT / ".tools/bin/opa"))
    args = parser.parse_args()
    opa_binary = args.opa if os.access(args.opa, os.X_OK) else shutil.which("opa")
    if opa_binary is None:
        raise SystemExit("no OPA binary: run `make install` or pass --opa")

    policies = load_policies(ROOT / "policies")
    print(f"policy revision {policies.revision[:12]}; default engine {DEFAULT}; {os.cpu_count()} CPUs")
    with OpaSidecar(opa_binary) as server:
        engines = {
            "wasm": WasmEngine(policies, opa_binary),
            "embedded": EmbeddedEngine(policies),
            "opa": OpaEngine(server.url, policies, token=server.token),
        }
        try:
            ok = compare("consent decision", CONSENT_PATH, questions(), engines, args.calls, 300)
            ok &= compare(
                "governance decision", DECISION_PATH, governance_questions(), engines, args.calls // 4, 1000
            )
        finally:
            for engine in engines.values():
                engine.close()
    return 0 if ok else 1


def governance_questions() -> list[dict[str, Any]]:
    """The governance test cases' data request, varied: scores, verification, datasets, purposes."""
    base = decision_input()
    out = []
    for score, verified, purpose in itertools.product(
        (30, 60, 90), (True, False), ("dpv:AcademicResearch", "dpv:Marketing")
    ):
        q = json.loads(json.dumps(base))
        q["organisation"]["assessment"]["score"] = score
        q["organisation"]["assessment"]["verified"] = verified
        q["request"]["purpose"]["code"] = purpose
        out.append(q)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
