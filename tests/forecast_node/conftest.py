"""Fixtures: two aligned co-op nodes over mutual TLS holding ten weeks of simulated readings."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest

from coopfed.forecaster import CoopSpec, MemberReadings, england, simulate_coop
from coopfed.node.client import bearer
from coopfed.node.model import ConsentLevel, ConsentSettings
from coopfed.node.runtime import Node
from coopfed.v1 import common_pb2, forecast_pb2, forecast_pb2_grpc, member_pb2, member_pb2_grpc
from tests.federation_node.conftest import RunningNode, coop_policies, grantee_of, running

DAYS = 70
PEAK_PERCENTILE = 60  # low, so that every 48 h forecast has peak windows to nudge about
ENV = {"COOPFED_FORECAST__ROUNDS": "8", "COOPFED_FORECAST__POLL_INTERVAL_S": "1"}
GREEN = ConsentSettings(level=ConsentLevel.GREEN)
RED = ConsentSettings(level=ConsentLevel.RED)
CONSENTS = [GREEN] * 6 + [RED] * 2  # six may be shared with aligned co-ops (k = 5), two internal only
SPECS = {
    "coop-a": CoopSpec("coop-a", households=8, site=england("Bristol", 51.45, -2.59), pv_share=0.5, seed=11),
    "coop-b": CoopSpec("coop-b", households=8, site=england("Kendal", 54.33, -2.75), pv_share=0.3, seed=22),
}


def forecast_policies(folder: Path) -> Path:
    """The repository's policies with a lower peak percentile (a policy-data value)."""
    target = coop_policies(folder)
    data = json.loads((target / "data.json").read_text())
    data["forecast"]["peak_percentile"] = PEAK_PERCENTILE
    (target / "data.json").write_text(json.dumps(data))
    return target


def store_readings(node: Node, readings: MemberReadings) -> dict[str, ConsentSettings]:
    """Every simulated member joins with its consent and uploads all three datasets."""
    consents = {}
    for i, member_id in enumerate(readings.members["member_id"]):
        settings = CONSENTS[i % len(CONSENTS)]
        node.store.create_member(member_id, f"Member {i}", settings, admitted_by="test")
        node.store.put_readings(
            member_id,
            [
                (ds, readings.periods, getattr(readings, ds)[:, i].astype(float))
                for ds in ("demand", "generation", "export")
            ],
        )
        consents[member_id] = settings
    return consents


@dataclass
class Coops:
    a: RunningNode
    b: RunningNode
    readings: dict[str, MemberReadings]


def _pin(who: RunningNode, peer: RunningNode) -> None:
    preview = asyncio.run(grantee_of(who.node).preview_join(peer.public, plaintext=True))
    grantee_of(who.node).pin(preview)


@pytest.fixture(scope="package")
def coops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coops]:
    tmp = tmp_path_factory.mktemp("fc")
    today = dt.date.today()
    readings = {
        cid: simulate_coop(spec, today - dt.timedelta(days=DAYS), today).readings
        for cid, spec in SPECS.items()
    }
    with contextlib.ExitStack() as stack:
        a, b = (
            stack.enter_context(running(tmp / cid, cid, forecast_policies(tmp / cid), {**ENV, **place(cid)}))
            for cid in SPECS
        )
        for run in (a, b):
            store_readings(run.node, readings[run.id])
        _pin(a, b)
        _pin(b, a)
        yield Coops(a, b, readings)


def place(coop_id: str) -> dict[str, str]:
    s = SPECS[coop_id].site
    return {"COOPFED_PLACE__LATITUDE": str(s.latitude), "COOPFED_PLACE__LONGITUDE": str(s.longitude)}


def totals(readings: MemberReadings, dataset: str, members: list[int]) -> np.ndarray:
    return getattr(readings, dataset)[:, members].sum(axis=1, dtype=float)


class MemberClient:
    """A member registered over gRPC on a node's public port."""

    def __init__(self, address: str, name: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.members = member_pb2_grpc.MemberServiceStub(self.channel)
        self.forecasts = forecast_pb2_grpc.ForecastServiceStub(self.channel)
        reply = self.members.Register(member_pb2.RegisterRequest(display_name=name))
        self.id, self.md = reply.member_id, bearer(reply.token)

    def nudges(self, on: bool) -> None:
        settings = member_pb2.ConsentSettings(level=common_pb2.CONSENT_LEVEL_RED, nudges=on)
        self.members.SetConsent(member_pb2.SetConsentRequest(settings=settings), metadata=self.md)

    def close(self) -> None:
        self.channel.close()


END = object()


class Stream:
    """A nudge stream read by a thread into a queue, so a test waits on it with a timeout."""

    def __init__(self, client: MemberClient) -> None:
        self.call = client.forecasts.SubscribeNudges(
            forecast_pb2.SubscribeNudgesRequest(), metadata=client.md, timeout=120
        )
        self.items: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for nudge in self.call:
                self.items.put(nudge)
        except grpc.RpcError as exc:
            self.items.put(exc)
        self.items.put(END)

    def next(self, timeout: float = 30) -> forecast_pb2.Nudge | grpc.RpcError | object:
        return self.items.get(timeout=timeout)

    def until_sequence(self, sequence: int) -> forecast_pb2.Nudge:
        """The first nudge of forecast `sequence` (skipping earlier forecasts' nudges)."""
        while True:
            item = self.next()
            assert isinstance(item, forecast_pb2.Nudge), item
            if item.forecast_sequence == sequence:
                return item

    def cancel(self) -> None:
        self.call.cancel()
        self.thread.join(10)
