"""Fixtures: co-ops with their own policy folders, real nodes on loopback ports, populations."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from coopfed.federation.keys import KeyRing
from coopfed.federation.tls import TlsIdentity
from coopfed.node.federation.grantee import Grantee
from coopfed.node.federation.manifest import Manifest
from coopfed.node.federation.refresh import PeerRefresh
from coopfed.node.model import HALF_HOUR, ConsentSettings
from coopfed.node.runtime import Node, init_node, open_node
from coopfed.node.server import NodeServer
from coopfed.node.settings import load_settings
from tests.node.conftest import QUIET

T = TypeVar("T")
POLICIES = Path(__file__).resolve().parents[2] / "policies"
YEAR_START = int(datetime(2023, 1, 1, tzinfo=UTC).timestamp())
YEAR_END = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())  # 365 days: 17,520 half-hours
FORECASTING = "dpv:CommunityEnergyForecasting"


def coop_policies(folder: Path, *, aims: list[str] | None = None, legal_form: str = "") -> Path:
    """A copy of the repository's policies with this co-op's own aims and legal form."""
    target = folder / "policies"
    shutil.copytree(POLICIES, target, ignore=shutil.ignore_patterns("*_test.rego"))
    data = json.loads((target / "data.json").read_text())
    if aims is not None:
        data["coop"]["aims"] = aims
    if legal_form:
        data["federation"]["governance"]["legal_form"] = legal_form
    (target / "data.json").write_text(json.dumps(data))
    return target


def grantee_of(node: Node) -> Grantee:
    """The node's requesting side, built as its CLI builds it."""
    return Grantee(node.federation, node.keys, node.policy)


def refresher(node: Node) -> PeerRefresh:
    return PeerRefresh(node.federation, node.keys, node.policy, node.governance)


@dataclass
class RunningNode:
    node: Node
    server: NodeServer
    loop: asyncio.AbstractEventLoop
    config: Path

    @property
    def id(self) -> str:
        return self.node.node_id

    @property
    def public(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def peer(self) -> str:
        assert self.server.peers is not None
        return f"127.0.0.1:{self.server.peers.port}"

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the node's own event loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@contextlib.contextmanager
def running(
    folder: Path,
    node_id: str,
    policies: Path,
    env: dict[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> Iterator[RunningNode]:
    """A node serving its public and peer ports on 127.0.0.1:<ephemeral> from its own loop thread."""
    config = init_node(
        folder, node_id=node_id, name=f"{node_id} co-op", listen="127.0.0.1:0", policies=policies
    )
    env = {"COOPFED_STORAGE__SYNCHRONOUS": "NORMAL", **QUIET, **(env or {})}
    with open_node(load_settings(config, environ=env)) as node:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        server = NodeServer(node, clock)
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
        try:
            yield RunningNode(node, server, loop, config)
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(1), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


def populate(
    node: Node, consents: list[ConsentSettings], *, last_day_members: int, seed: int = 3
) -> dict[str, dict[str, np.ndarray]]:
    """A year of half-hourly demand, generation and export per member, stored directly.

    Only the first `last_day_members` members have readings on the year's last day, so those
    cells have fewer contributors. Returns member id -> dataset -> kWh per half-hour of the year
    (NaN where the member has no reading).
    """
    rng = np.random.default_rng(seed)
    periods = np.arange(YEAR_START, YEAR_END, HALF_HOUR, dtype=np.int64)
    last_day = periods >= YEAR_END - 86_400
    values: dict[str, dict[str, np.ndarray]] = {}
    for i, settings in enumerate(consents):
        member_id = f"m{i:02d}"
        node.store.create_member(member_id, f"Member {i}", settings, admitted_by="test")
        keep = np.ones(periods.size, bool) if i < last_day_members else ~last_day
        series = {ds: rng.gamma(2.0, 0.2, periods.size).round(3) for ds in ("demand", "generation", "export")}
        node.store.put_readings(member_id, [(ds, periods[keep], kwh[keep]) for ds, kwh in series.items()])
        values[member_id] = {ds: np.where(keep, kwh, np.nan) for ds, kwh in series.items()}
    return values


def expected_totals(
    values: dict[str, dict[str, np.ndarray]], members: list[str], dataset: str
) -> tuple[np.ndarray, np.ndarray]:
    """kWh sums and contributor counts per half-hour of the year over `members`."""
    stack = np.array([values[m][dataset] for m in members])
    return np.nansum(stack, axis=0), (~np.isnan(stack)).sum(axis=0)


def sample_manifest(coop_id: str, *, ring: KeyRing | None = None) -> Manifest:
    """A well-formed manifest of a co-op with fresh keys and certificate."""
    if ring is None:
        ring = KeyRing()
        ring.rotate()
    return Manifest(
        coop_id=coop_id,
        name=f"{coop_id} co-op",
        aims=(FORECASTING, "dpv:ServiceOptimisation", "dpv:PublicBenefit"),
        governance={
            "legal_form": "cooperative",
            "decision_making": "one_member_one_vote",
            "consent_model": "traffic_light",
            "min_group_size": 5,
            "policy_review": "technical_board",
        },
        policy_revision="2025.1",
        policy_hash="ab" * 32,
        jwks=ring.jwks(),
        tls_certificate_pem=TlsIdentity.create(coop_id).cert_pem,
        endpoints={"public": f"{coop_id}:50051", "peer": f"{coop_id}:50052"},
    )
