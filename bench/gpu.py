"""Benchmark: pooled training on a CUDA device against the CPU, on a large synthetic federation.

Simulates `--coops` co-ops (default 100: the default federation's three sites and technology
mixes, each co-op with its own seed, size and shares) for `--years` years (default 3) of
half-hourly data, then trains the same pooled model (point booster and P10/P90 band) with the
same parameters on the CPU and on `cuda`, and prints both times, the speed-up, and the day-ahead
demand MAE of each on the final week, so a faster device that learns something else is seen.
Target: CUDA at least 3x faster than the CPU, the two MAEs within 2 % of each other.

Without a CUDA device it says so and exits 0 (CI has none); `--cpu-only` runs the CPU half alone,
to try the script on a small federation anywhere:

    .venv/bin/python bench/gpu.py                                   # 100 co-ops x 3 years
    .venv/bin/python bench/gpu.py --coops 4 --years 1 --cpu-only    # the script itself, anywhere
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench/forecast.py

import argparse
import dataclasses
import datetime as dt
import sys
import time

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coopfed.forecaster import (
    CoopData,
    CoopSpec,
    Forecaster,
    ModelArtifact,
    build_features,
    default_federation,
    simulate_federation,
    train_pooled,
)
from coopfed.forecaster.train import cuda_available, training_origins

END = dt.date(2025, 1, 1)
TARGET_SPEEDUP = 3.0
TARGET_MAE_GAP = 0.02


def federation(n: int) -> tuple[CoopSpec, ...]:
    """`n` co-ops cycling through the default federation's sites and mixes, each its own draw."""
    rng = np.random.default_rng(7)
    bases = default_federation()
    return tuple(
        dataclasses.replace(
            bases[i % len(bases)],
            coop_id=f"coop-{i:03d}",
            households=int(rng.integers(30, 120)),
            pv_share=float(rng.uniform(0.1, 0.5)),
            heat_pump_share=float(rng.uniform(0.05, 0.3)),
            seed=1000 + i,
        )
        for i in range(n)
    )


def day_ahead_mae(artifact: ModelArtifact, key: Ed25519PrivateKey, coops: list[CoopData]) -> float:
    """Mean absolute error (kWh per member) of the demand forecast from the last week's origins."""
    model = Forecaster.from_artifacts([artifact], {artifact.metadata.coop_id: key.public_key()})
    errors = []
    for coop in coops:
        rows = build_features(coop, training_origins(coop)[-7:])
        errors.append(np.abs(model.predict_rows(rows)[:, 0] - rows.actual[:, 0]))
    return float(np.nanmean(np.concatenate(errors)))


def timed_training(
    coops: list[CoopData], key: Ed25519PrivateKey, until: int, rounds: int, device: str
) -> tuple[ModelArtifact, float]:
    tick = time.perf_counter()
    artifact = train_pooled(
        coops, key, trainer_id=coops[0].coop_id, until=until, rounds=rounds, device=device
    )
    return artifact, time.perf_counter() - tick


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coops", type=int, default=100)
    ap.add_argument("--years", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--cpu-only", action="store_true", help="train on the CPU alone (try the script)")
    args = ap.parse_args()
    if not args.cpu_only and not cuda_available():
        print("GPU comparison: skipped: no CUDA device answered (XGBoost's device='cuda')")
        return 0
    tick = time.perf_counter()
    sims = simulate_federation(federation(args.coops), END.replace(year=END.year - args.years), END)
    coops = [s.coop_data() for s in sims.values()]
    rows = sum(len(c.aggregates) for c in coops)
    print(f"simulated {len(coops)} co-ops, {rows:,} co-op half-hours in {time.perf_counter() - tick:.0f} s")
    until = int(training_origins(coops[0])[-7])  # the last week is held out
    key = Ed25519PrivateKey.generate()
    results = {}
    for device in ("cpu",) if args.cpu_only else ("cpu", "cuda"):
        artifact, seconds = timed_training(coops, key, until, args.rounds, device)
        results[device] = (seconds, mae := day_ahead_mae(artifact, key, coops))
        print(f"pooled training on {device}: {seconds:.1f} s, demand MAE {mae:.4f} kWh per member")
    if args.cpu_only:
        return 0
    (cpu_s, cpu_mae), (gpu_s, gpu_mae) = results["cpu"], results["cuda"]
    speedup, gap = cpu_s / gpu_s, abs(gpu_mae - cpu_mae) / cpu_mae
    print(f"speed-up cuda / cpu: {speedup:.1f}x; MAE difference {gap:.1%}")
    print(f"{'PASS' if speedup >= TARGET_SPEEDUP else 'FAIL'}  cuda at least {TARGET_SPEEDUP:g}x faster")
    print(f"{'PASS' if gap <= TARGET_MAE_GAP else 'FAIL'}  MAE within {TARGET_MAE_GAP:.0%} of the CPU's")
    return 0 if speedup >= TARGET_SPEEDUP and gap <= TARGET_MAE_GAP else 1


if __name__ == "__main__":
    sys.exit(main())
