"""Federated aggregates: a year of half-hourly totals for a 1,000-member co-op, fetched by a peer.

Two real nodes on loopback over mutual TLS. Each fetch is timed end to end at the peer:
FetchAggregates with the grant as credential (verified by the issuer: EdDSA, claims, revocation
list, pinned client certificate), the consent check once per consent profile, the running totals
of 17,520 half-hours x 3 datasets, k-suppression, and the stream decoded into arrays.
Baseline, measured in the same run: the store's raw profile_totals queries for the same year.
The co-op's database is built once (about a minute) and reused from --dir.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from coopfed.federation.grants import verify_grant
from coopfed.federation.keys import b64url_decode
from coopfed.node.federation import convert, issuer
from coopfed.node.federation.aggregates import PeerReleases
from coopfed.node.federation.client import PeerClient
from coopfed.node.federation.decide import GrantAsk
from coopfed.node.federation.grantee import Grantee
from coopfed.node.model import HALF_HOUR, ConsentLevel, ConsentSettings, Flow
from coopfed.node.runtime import Node, init_node, open_node
from coopfed.node.server import NodeServer
from coopfed.node.settings import load_settings
from coopfed.v1 import federation_pb2

ROOT = Path(__file__).resolve().parents[1]
START = int(datetime(2023, 1, 1, tzinfo=UTC).timestamp())
END = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())  # 365 days = 17,520 half-hours
DATASETS = ("demand", "generation", "export")
TARGET_MS, TARGET_VERIFY = 250.0, 5_000
C2C = frozenset({Flow.COOP_TO_COOP})
PROFILES = [  # consent profiles and their share of members
    (ConsentSettings(level=ConsentLevel.GREEN), 30),
    (ConsentSettings(level=ConsentLevel.RED), 15),
    (ConsentSettings(level=ConsentLevel.AMBER, persona="community_first"), 15),
    (ConsentSettings(level=ConsentLevel.AMBER, persona="research_friendly"), 8),
    (ConsentSettings(level=ConsentLevel.AMBER, persona="privacy_first"), 5),
    (ConsentSettings(level=ConsentLevel.AMBER, persona="generation_sharer"), 7),
    (ConsentSettings(level=ConsentLevel.AMBER, choices={"demand": C2C}), 6),
    (ConsentSettings(level=ConsentLevel.AMBER, choices={"generation": C2C, "export": C2C}), 5),
    (ConsentSettings(level=ConsentLevel.AMBER, choices={ds: C2C for ds in DATASETS}), 5),
    (ConsentSettings(level=ConsentLevel.AMBER), 4),
]


def build_coop(folder: Path, members: int, seed: int = 11) -> Path:
    """The issuing co-op's node: `members` households with a year of demand, 40% with solar PV."""
    config = folder / "coopfed.toml"
    if config.exists():
        return config
    shutil.rmtree(folder, ignore_errors=True)
    config = init_node(folder, node_id="coop-b", name="B", listen="127.0.0.1:0", policies=ROOT / "policies")
    rng = np.random.default_rng(seed)
    periods = np.arange(START, END, HALF_HOUR, dtype=np.int64)
    hour = (periods % 86_400) / 3600
    sun = np.clip(np.sin((hour - 6) / 12 * np.pi), 0, None)
    weights = np.array([w for _, w in PROFILES], float)
    choice = rng.choice(len(PROFILES), size=members, p=weights / weights.sum())
    settings = load_settings(config, environ={"COOPFED_STORAGE__SYNCHRONOUS": "NORMAL"})
    began = time.perf_counter()
    with open_node(settings) as node:
        for i in range(members):
            node.store.create_member(
                f"m{i:04d}", f"Household {i}", PROFILES[choice[i]][0], admitted_by="bench"
            )
            batches = [("demand", periods, rng.gamma(2.0, 0.15, periods.size))]
            if rng.random() < 0.4:
                generation = sun * rng.uniform(0.5, 2.0) * rng.uniform(0.6, 1.0, periods.size)
                batches += [("generation", periods, generation), ("export", periods, generation * 0.6)]
            node.store.put_readings(f"m{i:04d}", batches)
            if (i + 1) % 100 == 0:
                print(f"  built {i + 1} members ({time.perf_counter() - began:.0f} s)", flush=True)
    return config


@contextlib.contextmanager
def serving(config: Path) -> Iterator[tuple[Node, NodeServer]]:
    """A node serving from its own event-loop thread."""
    with open_node(load_settings(config, environ={"COOPFED_STORAGE__SYNCHRONOUS": "NORMAL"})) as node:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        server = NodeServer(node)
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(60)
        try:
            yield node, server
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(1), loop).result(60)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


async def fetch_year(client: PeerClient, token: str) -> int:
    """One fetch of every dataset for the year, decoded into arrays; returns cells released."""
    cells = 0
    async for chunk in client.fetch(token, federation_pb2.FetchAggregatesRequest()):
        if chunk.WhichOneof("content") == "series":
            cells += convert.series_from_proto(chunk.series).periods.size
    return cells


async def timed_fetches(
    a: Node, token: str, rounds: int, before: Callable[[], None]
) -> tuple[list[float], int]:
    fed = a.federation
    async with PeerClient(fed, a.keys, fed.state.peer("coop-b")) as client:
        await fetch_year(client, token)  # the channel's TLS handshake is not part of a fetch
        times, cells = [], 0
        for _ in range(rounds):
            before()
            began = time.perf_counter()
            cells = await fetch_year(client, token)
            times.append((time.perf_counter() - began) * 1000)
    return times, cells


def raw_totals_ms(b: Node, token: str, rounds: int) -> list[float]:
    """Baseline: the store's profile_totals alone for the year, over the same consenting profiles
    of each dataset as the release reads."""
    grant = verify_grant(token, trust=b.credentials.own_trust(), audience="coop-b", issuer="coop-b")
    consenting = PeerReleases(b.federation.state, b.pipeline).plan(grant, (), None).consenting
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        for ds in DATASETS:
            b.store.profile_totals(consenting[ds], ds, START, END)
        times.append((time.perf_counter() - began) * 1000)
    return times


def verifications_per_second(b: Node, token: str, seconds: float, rounds: int = 3) -> dict[str, float]:
    """Grant checks per second on one core: the issuer's full check (as FetchAggregates runs it),
    verify_grant alone, and the raw Ed25519 signature check of the same bytes (baseline). Rounds
    are interleaved and the best kept: the machine is shared, and the quietest round is fairest."""
    trust, revoked = b.credentials.own_trust(), b.federation.state.revocations()
    signing_input, _, signature = token.rpartition(".")
    message, sig = signing_input.encode("ascii"), b64url_decode(signature)
    public_key = b.keys.signer.public_key
    fns: dict[str, Callable[[], object]] = {
        "authenticate": lambda: issuer.authenticate(b.federation, b.keys, token),
        "verify_grant": lambda: verify_grant(
            token, trust=trust, audience="coop-b", issuer="coop-b", revoked=revoked
        ),
        "ed25519": lambda: public_key.verify(sig, message),
    }
    best = dict.fromkeys(fns, 0.0)
    for _ in range(rounds):
        for name, fn in fns.items():
            calls, began = 0, time.perf_counter()
            while time.perf_counter() - began < seconds / rounds:
                for _ in range(100):
                    fn()
                calls += 100
            best[name] = max(best[name], calls / (time.perf_counter() - began))
    return best


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=30, help="timed fetches")
    parser.add_argument(
        "--dir", type=Path, default=ROOT / "var" / "bench", help="where the co-op's node is kept"
    )
    args = parser.parse_args()

    folder_b = args.dir / f"federation-{args.members}"
    config_b = build_coop(folder_b, args.members)
    with open_node(load_settings(config_b)) as node_b:  # the peer of an earlier run is gone
        assert node_b.federation is not None
        state_b = node_b.federation.state
        for stale in state_b.peers():
            state_b.unpin(stale)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        config_a = init_node(
            Path(tmp), node_id="coop-a", name="A", listen="127.0.0.1:0", policies=ROOT / "policies"
        )
        b, server_b = stack.enter_context(serving(config_b))
        a, server_a = stack.enter_context(serving(config_a))
        for who, peer in ((a, server_b), (b, server_a)):
            grantee = Grantee(who.federation, who.keys, who.policy)
            grantee.pin(asyncio.run(grantee.preview_join(f"127.0.0.1:{peer.port}", plaintext=True)))
        ask = GrantAsk(
            DATASETS, (), "aggregate", "coop_to_coop", "dpv:CommunityEnergyForecasting", START, END
        )
        held, _ = asyncio.run(Grantee(a.federation, a.keys, a.policy).obtain_grant("coop-b", ask))

        cold, _ = asyncio.run(timed_fetches(a, held.token, max(3, args.rounds // 5), b.consent._cache.clear))
        warm, cells = asyncio.run(timed_fetches(a, held.token, args.rounds, lambda: None))
        raw = raw_totals_ms(b, held.token, args.rounds)
        rates = verifications_per_second(b, held.token, 3.0)
        profiles = len(b.store.profiles())

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load} (shared: figures vary with load)")
    print(f"co-op: {args.members} members, {profiles} consent profiles, {cells:,} cells released per year")
    for label, times in (
        ("raw profile_totals, 3 datasets (baseline)", raw),
        ("fetch a year, consent cached per profile", warm),
        ("fetch a year, consent policy re-evaluated", cold),
    ):
        print(f"{label:<44}median {statistics.median(times):7.1f} ms  p95 {p95(times):7.1f} ms")
    print(
        f"ratio fetch / raw totals (median)           {statistics.median(warm) / statistics.median(raw):7.2f}"
    )
    print(f"raw Ed25519 verify (baseline)               {rates['ed25519']:9,.0f} /s")
    print(f"verify_grant alone                          {rates['verify_grant']:9,.0f} /s")
    print(f"grant checks by the issuer (authenticate)   {rates['authenticate']:9,.0f} /s")
    print(f"ratio issuer check / raw Ed25519            {rates['authenticate'] / rates['ed25519']:9.2f}")
    worst = max(p95(warm), p95(cold))
    verdict = "meets" if worst < TARGET_MS else "MISSES"
    print(f"target < {TARGET_MS:.0f} ms per year: {verdict} (worst p95 {worst:.1f} ms)")
    verdict = "meets" if rates["authenticate"] > TARGET_VERIFY else "MISSES"
    print(f"target > {TARGET_VERIFY:,} grant checks/s: {verdict}")


if __name__ == "__main__":
    main()
