"""Benchmark: pooled vs model-federation training time and day-ahead accuracy on three simulated co-ops.

Simulates the default three-co-op federation for two years of half-hourly data, holds out the
final month, trains the pooled model and the three local models (nthread=2), and
backtests all of them against the baselines (seasonal-naive by day and by week, the 7-day
same-half-hour mean), four times: with weather forecasts issued by each origin, with clear-sky
and sun position only, with no weather at all, and with weather but no installed capacity (the
generation target then scaled by its 28-day peak, the ensemble weighted by rows alone: the
"before" of generation per kW). Targets checked at the end (with weather): pooled training under
60 s; day-ahead demand MAE <= 0.65 x weekly seasonal-naive and <= 0.85 x the 7-day mean, pooled
and federated; federated within 5 % of pooled; the P10-P90 band holding 80 % +- 5 % of the
actuals, demand and generation, pooled and federated. Generation skill is printed per co-op
with its technology mix, with and without the installed capacity.
The GPU comparison runs only where a CUDA device answers.

    .venv/bin/python bench/forecast.py [--years 2] [--rounds 150] [--chart PATH] [--json PATH]
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning threads of a
# 2-thread XGBoost can slow training several-fold. Read when XGBoost loads, so set before import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import dataclasses
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import arrow
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coopfed.forecaster import (
    BacktestReport,
    backtest,
    default_federation,
    plot_backtest,
    simulate_federation,
)
from coopfed.forecaster.train import cuda_available

END = dt.date(2025, 1, 1)
_LEARNED = ("local", "pooled", "federated")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--years", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=150)
    ap.add_argument("--nthread", type=int, default=2)
    ap.add_argument("--chart", type=Path, default=Path(tempfile.gettempdir()) / "coopfed-forecast.png")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    start = END.replace(year=END.year - args.years)
    begun = tick = time.perf_counter()
    sims = simulate_federation(default_federation(), start, END)
    coops = [s.coop_data() for s in sims.values()]
    sim_s = time.perf_counter() - tick
    members = sum(len(s.readings.members) for s in sims.values())
    periods = len(next(iter(sims.values())).readings.periods)
    print(f"simulated {len(coops)} co-ops, {members} members, {periods} half-hours in {sim_s:.1f} s")

    keys = {c.coop_id: Ed25519PrivateKey.generate() for c in coops}
    test_start = arrow.get(dt.datetime(END.year, END.month, 1), "Europe/London").shift(months=-1)
    variants = {
        "with weather": coops,
        "clear-sky only": [c.without_weather() for c in coops],
        "no weather": [c.without_weather(astronomy=False) for c in coops],
        "no capacity": [dataclasses.replace(c, capacity=None) for c in coops],
    }
    reports: dict[str, BacktestReport] = {}
    for name, data in variants.items():
        tick = time.perf_counter()
        reports[name] = backtest(
            data,
            keys,
            test_start=test_start.int_timestamp,
            rounds=args.rounds,
            params={"nthread": args.nthread},
        )
        print(f"backtest {name}: {time.perf_counter() - tick:.1f} s")
    report = reports["with weather"]
    pooled_s, fed_s = report.train_seconds["pooled"], report.train_seconds["federated"]
    print(f"\nheld-out month from {test_start.format('YYYY-MM-DD')}")
    print(f"{'training':<34}{'seconds':>8}{'vs pooled':>10}")
    print(f"{'pooled (one node, all co-ops)':<34}{pooled_s:>8.1f}{1.0:>10.2f}")
    print(f"{'federated (3 local, sequential)':<34}{fed_s:>8.1f}{fed_s / pooled_s:>10.2f}")
    slow_s = report.train_seconds["federated_slowest"]
    print(f"{'federated (slowest co-op alone)':<34}{slow_s:>8.1f}{slow_s / pooled_s:>10.2f}")
    print()
    print(report.to_table())
    for coop in sorted(sims):
        print()
        print(report.to_table(coop=coop))

    print("\nday-ahead MAE (kWh per member per half-hour) by weather the models saw, all co-ops")
    print(f"{'model':<20}" + "".join(f"{n + ' dem':>20}{'gen':>8}" for n in reports))
    for m in ("seasonal-naive-week", "7-day-mean", "local", "pooled", "federated"):
        cells = [(r.score(m, "demand")["mae"], r.score(m, "generation")["mae"]) for r in reports.values()]
        print(f"{m:<20}" + "".join(f"{d:>20.4f}{g:>8.4f}" for d, g in cells))

    print("\nday-ahead generation by co-op and technology (kW installed), MAE vs weekly seasonal-naive")
    print(f"{'co-op':<14}{'PV kW':>8}{'wind kW':>9}" + "".join(f"{m:>11}{'before':>8}" for m in _LEARNED))
    before = reports["no capacity"]
    for c in coops:
        kw = c.capacity or {}
        cells = [
            (report.score(m, "generation", c.coop_id), before.score(m, "generation", c.coop_id))
            for m in _LEARNED
        ]
        print(
            f"{c.coop_id:<14}{kw.get('pv', 0):>8.0f}{kw.get('wind', 0):>9.0f}"
            + "".join(f"{a['vs_naive']:>11.2f}{b['vs_naive']:>8.2f}" for a, b in cells)
        )
    print("(before: no installed capacity, generation scaled by its 28-day peak, ensemble weighted by rows)")

    pooled = report.score("pooled", "demand")
    fed = report.score("federated", "demand")
    bands = {(m, t): report.band(m, t) for m in ("pooled", "federated") for t in ("demand", "generation")}
    print(f"\n{'P10-P90 band, day-ahead':<28}{'coverage':>9}{'pinball':>9}")
    for (m, t), b in bands.items():
        print(f"{m + ' ' + t:<28}{b['coverage']:>9.1%}{b['pinball']:>9.4f}")
    checks = {
        "pooled training < 60 s": pooled_s < 60,
        "pooled demand MAE <= 0.65 x weekly seasonal-naive": pooled["vs_naive"] <= 0.65,
        "federated demand MAE <= 0.65 x weekly seasonal-naive": fed["vs_naive"] <= 0.65,
        "pooled demand MAE <= 0.85 x 7-day mean": pooled["vs_mean7"] <= 0.85,
        "federated demand MAE <= 0.85 x 7-day mean": fed["vs_mean7"] <= 0.85,
        "federated demand MAE <= 1.05 x pooled": fed["mae"] <= 1.05 * pooled["mae"],
        **{
            f"{m} {t} P10-P90 coverage 80 % +- 5 %": abs(b["coverage"] - 0.8) <= 0.05
            for (m, t), b in bands.items()
        },
    }
    print(f"\nfederated / pooled demand MAE: {fed['mae'] / pooled['mae']:.3f}")
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if cuda_available():
        _gpu_comparison(coops, keys, args.rounds)
    else:
        print("GPU comparison: skipped: no GPU (no CUDA device answered)")
    chart = plot_backtest(report.predictions, coops[0].coop_id, args.chart, tz=coops[0].site.tz)
    print(f"chart: {chart}")
    print(f"benchmark run time: {time.perf_counter() - begun:.0f} s")
    if args.json:
        doc = {"simulate_s": sim_s, **report.to_dict(), "checks": checks}
        doc["by_weather"] = {n: r.to_dict()["scores"] for n, r in reports.items()}
        args.json.write_text(json.dumps(doc, indent=2, default=float))
    return 0 if all(checks.values()) else 1


def _gpu_comparison(coops: list, keys: dict, rounds: int) -> None:
    """Pooled training time on CPU and on CUDA, same data and params."""
    from coopfed.forecaster import train_pooled

    for device in ("cpu", "cuda"):
        tick = time.perf_counter()
        train_pooled(coops, keys[coops[0].coop_id], trainer_id=coops[0].coop_id, rounds=rounds, device=device)
        print(f"pooled training on {device}: {time.perf_counter() - tick:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
