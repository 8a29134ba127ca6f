"""`coopfed demo`: three co-ops on one machine, with simulated members, federating for real.

Riverside and Fellside share aims and federate; Market Town Energy Ltd is a company with
marketing aims and is refused. Riverside forecasts and nudges, and three organisations ask it for
data (`demo_third_parties`). Every step goes through the real gRPC API, policies and grants.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import shutil
import signal
from dataclasses import dataclass, replace
from pathlib import Path

import arrow
import grpc
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from coopfed.forecaster import SimulatedCoop, default_federation, simulate_federation
from coopfed.node.cli.demo_third_parties import ThirdPartyResult, third_parties
from coopfed.node.client import bearer
from coopfed.node.credentials import issue_board_token
from coopfed.node.errors import CoopfedError
from coopfed.node.federation.decide import GrantAsk
from coopfed.node.federation.grantee import Grantee
from coopfed.node.forecast.schedule import when_words
from coopfed.node.ledger.demo import show_ledger
from coopfed.node.opendata.demo import FlowsShown, show_open_data_and_benchmark
from coopfed.node.policy.defaults import default_policies
from coopfed.node.portal.server import demo_portal
from coopfed.node.runtime import Node, init_node, open_node
from coopfed.node.server import NodeServer, portal_parts
from coopfed.node.services import books_of, forecasting_of, publisher_of
from coopfed.node.settings import load_settings
from coopfed.v1 import (
    common_pb2,
    forecast_pb2,
    forecast_pb2_grpc,
    governance_pb2,
    governance_pb2_grpc,
    member_pb2,
    member_pb2_grpc,
)

DAYS = 42
FORECASTING = "dpv:CommunityEnergyForecasting"
# How the simulated households set their consent, in turn: mostly sharing, some not at all.
CONSENTS = (
    member_pb2.ConsentSettings(level=common_pb2.CONSENT_LEVEL_GREEN, nudges=True),
    member_pb2.ConsentSettings(persona="community_first", nudges=True),
    member_pb2.ConsentSettings(level=common_pb2.CONSENT_LEVEL_GREEN),
    member_pb2.ConsentSettings(
        level=common_pb2.CONSENT_LEVEL_AMBER,
        choices=[common_pb2.DatasetChoice(dataset="demand", allowed_flows=[common_pb2.FLOW_COOP_TO_COOP])],
    ),
    member_pb2.ConsentSettings(level=common_pb2.CONSENT_LEVEL_RED),
)


@dataclass
class DemoCoop:
    """One running co-op of the demo."""

    node: Node
    server: NodeServer
    sim: SimulatedCoop

    @property
    def public(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@dataclass(frozen=True)
class Walkthrough:
    """What the demo showed, for a caller (or a test) to check rather than read."""

    pinned: tuple[str, ...]
    refused: tuple[str, ...]
    forecast_contributors: tuple[str, ...]
    third_parties: ThirdPartyResult
    flows: FlowsShown | None = None  # open data published, one member's benchmark


def run_demo(folder: Path, *, once: bool, console: Console) -> int:
    asyncio.run(walk_through(folder, console, keep_serving=not once))
    return 0


async def walk_through(folder: Path, console: Console, *, keep_serving: bool = False) -> Walkthrough:
    """Simulate, start the three nodes, and show every flow; serve on until a signal if asked."""
    end = dt.datetime.now(dt.UTC).date()
    start = end - dt.timedelta(days=DAYS)
    specs = [replace(spec, households=min(spec.households, 60)) for spec in default_federation()]
    with console.status(f"simulating {DAYS} days of three neighbourhoods (demandlib, pvlib)"):
        sims = simulate_federation(tuple(specs), start, end)
    if folder.exists():
        shutil.rmtree(folder)
    async with contextlib.AsyncExitStack() as stack:
        coops = [await _start(stack, folder, sims[spec.coop_id], console) for spec in specs]
        members = {coop.node.node_id: await _members_join(coop, console) for coop in coops}
        riverside, fellside, market = coops
        pinned, refused = await _federate(riverside, fellside, market, console)
        contributors = await _forecast(riverside, members["riverside"].nudged, console)
        first = int(riverside.sim.readings.periods[0])
        books = [(c.node.node_id, books_of(c.node)) for c in coops]
        await asyncio.to_thread(show_ledger, books, first, first + DAYS * 86_400, console)
        console.print("\n[bold]Third parties[/bold]")
        asked = await asyncio.to_thread(
            third_parties, riverside.node, riverside.public, members["riverside"].green, folder, console
        )
        flows = await asyncio.to_thread(
            show_open_data_and_benchmark,
            riverside.node.node_id,
            publisher_of(riverside.node).publish,
            riverside.public,
            members["riverside"].green,
            folder,
            console,
        )
        if keep_serving:
            authenticate = riverside.node.credentials.authenticate_member
            member = await asyncio.to_thread(authenticate, members["riverside"].green)
            portal, line = await demo_portal(portal_parts(riverside.node), member.id)
            stack.push_async_callback(portal.stop)
            console.print("\n" + line, markup=False)
            console.print("the three nodes keep serving; Ctrl-C stops them")
            for coop in coops:
                console.print(f"  {coop.node.node_id}: {coop.public}")
            console.print(_schedule_line(riverside), markup=False)
            stop = asyncio.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                asyncio.get_running_loop().add_signal_handler(sig, stop.set)
            await stop.wait()
            console.print("stopping the nodes")
    return Walkthrough(pinned, refused, contributors, asked, flows)


async def _start(
    stack: contextlib.AsyncExitStack, folder: Path, sim: SimulatedCoop, console: Console
) -> DemoCoop:
    coop_id = sim.spec.coop_id
    policies = _policies_for(folder / coop_id, coop_id)
    config = init_node(
        folder / coop_id, node_id=coop_id, name=_NAMES[coop_id], listen="127.0.0.1:0", policies=policies
    )
    node = stack.enter_context(
        # every household signs up from this one machine: a burst the size of the co-op
        open_node(
            load_settings(
                config,
                environ={
                    "COOPFED_STORAGE__SYNCHRONOUS": "NORMAL",
                    "COOPFED_NODE__REGISTRATION_BURST": "1000",
                },
            )
        )
    )
    server = NodeServer(node)
    await server.start()
    stack.push_async_callback(server.stop, 1)
    coop = DemoCoop(node, server, sim)
    console.print(f"[bold]{_NAMES[coop_id]}[/bold] ({coop_id}) serving on {coop.public}")
    return coop


_NAMES = {
    "riverside": "Riverside Energy Co-op",
    "fellside": "Fellside Community Power",
    "market-town": "Market Town Energy Ltd",
}


def _policies_for(folder: Path, coop_id: str) -> Path:
    """Riverside and Fellside run the shared policies; Market Town, a company, has other aims."""
    if coop_id != "market-town":
        return default_policies()
    target = folder.parent / f"{coop_id}-policies"
    shutil.copytree(default_policies(), target, ignore=shutil.ignore_patterns("*_test.rego"))
    data = json.loads((target / "data.json").read_text())
    data["coop"]["aims"] = [FORECASTING, "dpv:Marketing", "dpv:CommercialResearch"]
    data["federation"]["governance"]["legal_form"] = "company"
    (target / "data.json").write_text(json.dumps(data, indent=2))
    return target


@dataclass
class Joined:
    """Tokens of the co-op's members who opted in to nudges, and of one member at green."""

    nudged: list[str]
    green: str = ""


async def _members_join(coop: DemoCoop, console: Console) -> Joined:
    """The board invites each household, which registers with its invitation code (so it is
    admitted), sets its consent and uploads its readings over gRPC."""
    readings = coop.sim.readings.to_frame()
    uploaded = 0
    joined = Joined([])
    board = bearer(issue_board_token(coop.node.node_id, coop.node.keys, "demo", 3600))
    async with grpc.aio.insecure_channel(coop.public) as channel:
        stub = member_pb2_grpc.MemberServiceStub(channel)
        review = governance_pb2_grpc.ReviewServiceStub(channel)
        for i, (member, rows) in enumerate(readings.groupby("member_id", sort=False)):
            invitation = await review.CreateInvitation(
                governance_pb2.CreateInvitationRequest(), metadata=board
            )
            request = member_pb2.RegisterRequest(display_name=str(member), invitation_code=invitation.code)
            reg = await stub.Register(request)
            md = bearer(reg.token)
            settings = CONSENTS[i % len(CONSENTS)]
            await stub.SetConsent(member_pb2.SetConsentRequest(settings=settings), metadata=md)
            if settings.nudges:
                joined.nudged.append(reg.token)
            if settings.level == common_pb2.CONSENT_LEVEL_GREEN and not joined.green:
                joined.green = reg.token
            summary = await stub.UploadReadings(_batches(rows), metadata=md)
            uploaded += summary.inserted
    console.print(
        f"  {coop.node.node_id}: the board invited {i + 1} households; each joined with its invitation "
        f"and uploaded its readings ({uploaded:,} in all)"
    )
    return joined


def _batches(rows: pd.DataFrame):
    async def gen():
        for dataset, part in rows.groupby("dataset"):
            yield member_pb2.ReadingBatch(
                dataset=str(dataset),
                period_start_unix=part["period"].to_numpy(np.int64).tolist(),
                kwh=part["kwh"].to_numpy(float).tolist(),
            )

    return gen()


def _grantee(node: Node) -> Grantee:
    return Grantee(node.federation, node.keys, node.policy)


async def _federate(
    riverside: DemoCoop, fellside: DemoCoop, market: DemoCoop, console: Console
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Riverside and Fellside pin each other, Market Town is refused; Fellside grants aggregates.

    Returns who pinned whom ("riverside>fellside") and whom Riverside refused."""
    console.print("\n[bold]Federation[/bold]")
    pinned, refused = [], []
    for who, peer in ((riverside, fellside), (fellside, riverside)):
        grantee = _grantee(who.node)
        preview = await grantee.preview_join(peer.public, plaintext=True)
        grantee.pin(preview)
        pinned.append(f"{who.node.node_id}>{peer.node.node_id}")
        console.print(
            f"  {who.node.node_id} pinned {peer.node.node_id}: " + " ".join(preview.alignment.reasons)
        )
    grantee = _grantee(riverside.node)
    preview = await grantee.preview_join(market.public, plaintext=True)
    try:
        grantee.pin(preview)
    except CoopfedError as refusal:
        refused.append(market.node.node_id)
        console.print(f"  [red]refused[/red] {market.node.node_id}: {refusal.message}")
    periods = riverside.sim.readings.periods
    ask = GrantAsk(
        ("demand", "generation", "export"),
        (),
        "aggregate",
        "coop_to_coop",
        FORECASTING,
        int(periods[0]),
        int(periods[-1]) + 1800,
    )
    held, reasons = await grantee.obtain_grant("fellside", ask)
    console.print(f"  fellside granted riverside {held.jti[:8]}…: " + " ".join(reasons))
    fetched = await grantee.fetch_aggregates(held.jti)
    table = Table("dataset", "half-hours released", "withheld (< k)", "kWh", "members (median)")
    for name, series in sorted(fetched.series.items()):
        table.add_row(
            name,
            f"{series.periods.size:,}",
            f"{series.suppressed.size:,}",
            f"{series.kwh.sum():,.0f}" if series.kwh is not None else "not asked",
            f"{np.median(series.member_count):.0f}" if series.member_count is not None else "not asked",
        )
    console.print(table)
    return tuple(pinned), tuple(refused)


async def _forecast(coop: DemoCoop, nudged: list[str], console: Console) -> tuple[str, ...]:
    """Pooled training on the co-op's own and granted aggregates, a forecast, and its nudges."""
    console.print("\n[bold]Forecast[/bold]")
    node = coop.node
    forecasting = forecasting_of(node)
    data = forecasting.data
    peers, problems = await data.peer_aggregates(data.forecast_policy().purpose)
    for peer, problem in problems.items():
        console.print(f"  [yellow]{peer}[/yellow]: {problem}")
    with console.status("training the pooled XGBoost forecaster"):
        trained = await asyncio.to_thread(forecasting.models.train_pooled_model, peers)
        await asyncio.to_thread(forecasting.make_forecast, mode="pooled")
    meta = trained.artifact.metadata
    console.print(
        f"  {node.node_id} trained pooled model v{meta.version} on {', '.join(meta.contributors)} "
        f"({meta.training_rows:,} rows), signed with its own key"
    )
    async with grpc.aio.insecure_channel(coop.public) as channel:
        stub = forecast_pb2_grpc.ForecastServiceStub(channel)
        forecast = await stub.GetForecast(forecast_pb2.GetForecastRequest(), metadata=bearer(nudged[0]))
        table = Table("window", "from", "to", "nudge")
        for w in forecast.windows:
            kind = forecast_pb2.WindowKind.Name(w.kind).removeprefix("WINDOW_KIND_").lower()
            table.add_row(kind, _local(w.start_unix), _local(w.end_unix), w.nudge)
        console.print(table if forecast.windows else "  no peak or surplus in the next 48 hours")
        stream = stub.SubscribeNudges(forecast_pb2.SubscribeNudgesRequest(), metadata=bearer(nudged[0]))
        first = await anext(aiter(stream), None)
        stream.cancel()
    if first is not None:
        console.print(f"  a member who opted in receives: [italic]{first.text}[/italic]")
    console.print(f"  {len(nudged)} of riverside's members opted in to nudges; no one else receives them")
    return tuple(meta.contributors)


def _schedule_line(coop: DemoCoop) -> str:
    """When the nodes forecast (and nudge) by themselves, while they keep serving."""
    schedule = coop.server.schedule
    if schedule is None:
        return "they forecast only when asked: [forecast_schedule] enabled = false"
    plan, now = schedule.plan, schedule.clock()
    when = when_words(plan.next(now), now, plan.tz)
    return f"each forecasts by itself every day at {plan.at:%H:%M} ({plan.tz}); next at {when}"


def _local(unix: int) -> str:
    return arrow.get(unix).to("Europe/London").format("ddd HH:mm")
