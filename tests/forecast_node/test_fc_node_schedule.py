"""The node forecasts by itself: slots on the co-op's clock across clock changes, catching up and
retrying on an injected clock, and a serving node that trains, forecasts and nudges on schedule."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

import arrow
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coopfed.forecaster import simulate_coop
from coopfed.node import cli
from coopfed.node.errors import InvalidArgument
from coopfed.node.forecast.schedule import (
    STATUS_FILE,
    Plan,
    read_state,
    schedule_status,
    when_words,
)
from coopfed.node.operations import node_status
from coopfed.node.runtime import Node, init_node, open_node
from coopfed.node.services import forecast_schedule_of, forecasting_of
from coopfed.node.settings import ForecastScheduleSection, PlaceSection, Settings, load_settings
from coopfed.v1 import forecast_pb2
from tests.federation_node.conftest import grantee_of, running

from .conftest import ENV, SPECS, MemberClient, Stream, forecast_policies, store_readings

UTC = dt.UTC
NOON = dt.time(12)


def utc(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=UTC).timestamp())


def plan(tz: str, at: str = "12:00", every: int = 7) -> Plan:
    conf = ForecastScheduleSection(forecast_at=at, retrain_every_days=every)
    return Plan.of(Settings(place=replace(PlaceSection(), tz=tz), forecast_schedule=conf))


# --- slots on the co-op's clock --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "before", "after", "hours"),
    [
        # London springs forward on Sun 29 Mar 2026: noon GMT, then noon BST 23 hours later
        ("Europe/London", utc(2026, 3, 28, 12), utc(2026, 3, 29, 11), 23),
        ("Europe/London", utc(2026, 10, 24, 11), utc(2026, 10, 25, 12), 25),  # and falls back
        # Sydney's clocks go back in April and forward in October (southern hemisphere)
        ("Australia/Sydney", utc(2026, 4, 4, 1), utc(2026, 4, 5, 2), 25),
        ("Australia/Sydney", utc(2026, 10, 3, 2), utc(2026, 10, 4, 1), 23),
    ],
)
def test_noon_stays_noon_across_the_clock_change(tz: str, before: int, after: int, hours: int) -> None:
    p = plan(tz)
    assert p.next(before) == after  # the slot after the one before the change
    assert p.next(before - 1) == before
    assert p.last(after - 1) == before
    assert p.last(after) == after
    assert after - before == hours * 3600
    assert dt.datetime.fromtimestamp(after, ZoneInfo(tz)).time() == NOON


@pytest.mark.parametrize("tz", ["Europe/London", "Australia/Sydney"])
def test_a_year_of_slots_is_one_a_day_at_noon_local(tz: str) -> None:
    p, slot = plan(tz), utc(2026, 1, 1)
    days = []
    for _ in range(366):
        slot = p.next(slot)
        local = dt.datetime.fromtimestamp(slot, ZoneInfo(tz))
        assert local.time() == NOON
        days.append(local.date())
    assert days == [days[0] + dt.timedelta(days=i) for i in range(366)]
    gaps = {b - a for a, b in itertools.pairwise(days)}
    assert gaps == {dt.timedelta(days=1)}


def test_a_time_the_clocks_skip_or_repeat_still_comes_once_that_day() -> None:
    london = ZoneInfo("Europe/London")
    skipped = plan("Europe/London", "01:30")  # 01:00-02:00 does not exist on 29 Mar 2026
    slot = skipped.next(utc(2026, 3, 28, 12))
    assert dt.datetime.fromtimestamp(slot, london).strftime("%d %H:%M") == "29 02:30"  # the gap later
    assert dt.datetime.fromtimestamp(skipped.next(slot), london).strftime("%d %H:%M") == "30 01:30"
    repeated = plan("Europe/London", "01:30")  # 01:00-02:00 happens twice on 25 Oct 2026
    slot = repeated.next(utc(2026, 10, 24, 12))
    assert slot == utc(2026, 10, 25, 0, 30)  # 01:30 BST, the first time
    assert repeated.next(slot) == utc(2026, 10, 26, 1, 30)  # not 01:30 GMT an hour later


def test_weekly_training_is_due_on_the_seventh_local_day_across_the_change() -> None:
    p = plan("Europe/London")
    trained = utc(2026, 3, 23, 12, 0, 40)  # Monday noon GMT, 40 s into the run
    monday = utc(2026, 3, 30, 11)  # the next Monday noon, BST: 6 days 23 hours later
    assert not p.training_due(trained, utc(2026, 3, 29, 11))
    assert p.training_due(trained, monday)
    assert p.training_due(None, monday)  # no model yet: train at the first slot
    assert p.next_training(trained, trained + 60) == monday
    assert p.next_training(trained, monday + 60) == utc(2026, 3, 31, 11)  # a run failed: the next day


def test_wrong_schedule_settings_are_refused() -> None:
    for at in ("noon", "24:00", "12:60", ""):
        with pytest.raises(InvalidArgument, match="forecast_at must be a local time"):
            plan("Europe/London", at)
    with pytest.raises(InvalidArgument, match="retrain_every_days"):
        plan("Europe/London", every=0)
    assert plan("Europe/London", "06:05:30").at == dt.time(6, 5, 30)


def test_times_in_words_are_on_the_coops_clock() -> None:
    now = utc(2026, 12, 2, 9)  # Wednesday
    tz = "Europe/London"
    assert when_words(utc(2026, 12, 2, 12), now, tz) == "12:00 today"
    assert when_words(utc(2026, 12, 3, 12), now, tz) == "12:00 tomorrow"
    assert when_words(utc(2026, 12, 1, 12), now, tz) == "12:00 yesterday"
    assert when_words(utc(2026, 12, 7, 12), now, tz) == "Monday 12:00"
    assert when_words(utc(2026, 12, 9, 12), now, tz) == "Wed 9 Dec 12:00"
    assert when_words(utc(2026, 12, 2, 12), now, "Australia/Sydney") == "23:00 today"


# --- catching up and retrying, on an injected clock ------------------------------------------------


class Clock:
    """Real time moved by an offset a test sets: the node's schedule reads it."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset

    def stand_at(self, at: float) -> None:
        self.offset = at - time.time()


def few_days(days: int) -> object:
    end = dt.date.today()
    return simulate_coop(SPECS["coop-a"], end - dt.timedelta(days=days), end).readings


@pytest.fixture(scope="module")
def thin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A node holding three days of readings: too little to train on."""
    folder = tmp_path_factory.mktemp("thin") / "coop-a"
    config = init_node(
        folder, node_id="coop-a", name="A", listen="127.0.0.1:0", policies=forecast_policies(folder.parent)
    )
    with open_node(load_settings(config, environ=ENV)) as node:
        store_readings(node, few_days(3))  # type: ignore[arg-type]
        yield node


def test_a_failed_run_is_kept_and_tried_again_at_the_next_slot_only(
    thin: Node, caplog: pytest.LogCaptureFixture
) -> None:
    tz = thin.settings.place.tz
    noon = arrow.get(dt.datetime.combine(dt.date.today(), NOON), tz).int_timestamp  # by the data
    clock = Clock()
    clock.stand_at(noon - 3600)
    schedule = forecast_schedule_of(thin, clock)
    assert not asyncio.run(schedule.run_due())  # a node with nothing kept waits for its first slot
    caplog.set_level(logging.INFO, "coopfed.node.forecast.schedule")
    clock.stand_at(noon + 1)
    assert asyncio.run(schedule.run_due())
    state = read_state(thin.settings.base_dir)
    assert (state["training"].ok, state["training"].reason) == (False, "not enough data yet")
    assert state["training"].code == "forecast.too_little_data"
    assert "three weeks" in state["training"].detail
    assert (state["forecast"].ok, state["forecast"].reason) == (False, "no model yet")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2  # one line for training, one for the forecast
    assert "next try" in warnings[0].getMessage()

    clock.stand_at(noon + 1800)
    assert not asyncio.run(schedule.run_due())  # the slot was run, failed or not
    restarted = forecast_schedule_of(thin, clock)  # a restart reads what was kept
    assert not asyncio.run(restarted.run_due())
    clock.stand_at(noon + 86_400 + 3600)  # stopped over the next slot: catches up when it starts
    caplog.clear()
    assert asyncio.run(forecast_schedule_of(thin, clock).run_due())
    assert all(r.levelno < logging.WARNING for r in caplog.records)  # the same reason, said quietly
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "scheduled training still failing",
        "scheduled forecast still failing",
    ]
    # no next run to tell of:
    stopped = schedule_status(thin.settings, thin.forecast.store, serving=False, now=clock())
    assert stopped["training"] == "training failed: not enough data yet"
    assert stopped["training_detail"]["failure"]["code"] == "forecast.too_little_data"
    off = replace(thin.settings, forecast_schedule=ForecastScheduleSection(enabled=False))
    shown = schedule_status(off, thin.forecast.store, serving=True, now=clock())
    assert shown["forecast"] == "no forecast yet; not scheduled ([forecast_schedule] enabled = false)"


def test_a_model_of_a_refused_format_makes_training_due_at_the_next_slot(tmp_path: Path) -> None:
    from coopfed.forecaster.artifact import _OLD_MAGIC

    config = init_node(
        tmp_path / "coop-a", node_id="coop-a", name="A", listen="127.0.0.1:0",
        policies=forecast_policies(tmp_path),
    )  # fmt: skip
    with open_node(load_settings(config, environ=ENV)) as node:
        store_readings(node, few_days(28))  # type: ignore[arg-type]
        store = node.forecast.store  # type: ignore[union-attr]
        store.save_model("coop-a", "local", 1, _OLD_MAGIC + bytes(64))  # kept by an older release
        noon = arrow.get(dt.datetime.combine(dt.date.today(), NOON), node.settings.place.tz).int_timestamp
        clock = Clock()
        clock.stand_at(noon - 3600)
        enabled = replace(node.settings, forecast_schedule=ForecastScheduleSection(enabled=True))
        shown = schedule_status(enabled, store, serving=True, now=clock())
        assert shown["training"] == (
            "local model v1 cannot be used (a model of the older format coopfed-model/1 (no band)): "
            "training due; next at 12:00 today"
        )
        assert shown["training_detail"]["last_at"] is None
        schedule = forecast_schedule_of(node, clock)
        clock.stand_at(noon + 1)  # saved just now, yet retrained rather than refused every day
        assert asyncio.run(schedule.run_due())
        state = read_state(node.settings.base_dir)
        assert state["training"].ok, state["training"]
        assert state["training"].detail.startswith("local model v2")
        assert state["forecast"].ok, state["forecast"]
        shown = schedule_status(enabled, store, serving=True, now=clock())
        assert re.fullmatch(r"local model v2 trained at \d\d:\d\d today; next at .+", shown["training"])


# --- a serving node on schedule ---------------------------------------------------------------------


def soon(tz: str, minutes: int = 2) -> str:
    return arrow.now(tz).shift(minutes=minutes).format("HH:mm")


def scheduled_env(at: str) -> dict[str, str]:
    return {**ENV, "COOPFED_FORECAST_SCHEDULE__ENABLED": "true", "COOPFED_FORECAST_SCHEDULE__FORECAST_AT": at}


def reach_the_slot(run, clock: Clock) -> int:  # type: ignore[no-untyped-def]
    """Stand the node's clock a second before its next slot and let its schedule look."""
    schedule = run.server.schedule
    assert schedule is not None
    slot = schedule.plan.next(clock())
    clock.stand_at(slot - 1)
    run.loop.call_soon_threadsafe(schedule.wake)
    return slot


def health(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.integration
def test_the_node_trains_forecasts_and_nudges_on_schedule_with_demo_length_data(tmp_path: Path) -> None:
    at = soon("Europe/London")
    clock = Clock(offset=-3600)  # an hour early: nothing runs while the node starts
    with running(tmp_path / "a", "coop-a", forecast_policies(tmp_path), scheduled_env(at), clock) as run:
        store_readings(run.node, few_days(42))  # type: ignore[arg-type]  # as long as the demo's
        member = MemberClient(run.public, "Grace")
        member.nudges(True)
        stream = Stream(member)
        try:
            assert run.node.forecast is not None
            assert run.node.forecast.store.latest() is None
            slot = reach_the_slot(run, clock)
            while run.node.forecast.store.latest() is None:  # the event loop answers meanwhile
                assert health(run.public)
                time.sleep(0.2)
            nudge = stream.next(timeout=60)
            assert isinstance(nudge, forecast_pb2.Nudge), nudge
            assert nudge.forecast_sequence == 1
            assert nudge.text
        finally:
            stream.cancel()
            member.close()
        state = read_state(run.node.settings.base_dir)
        for _ in range(100):  # the outcome is kept just after the nudges go out
            if "forecast" in state:
                break
            time.sleep(0.1)
            state = read_state(run.node.settings.base_dir)
        assert state["training"].ok
        assert state["training"].detail.startswith("local model v1")
        assert state["forecast"].ok
        assert state["forecast"].at >= slot
        status = node_status(run.node.settings, now=clock())
        assert re.fullmatch(rf"forecast #1 at \d\d:\d\d today; next at {at} tomorrow", status.forecast)
        weekday = arrow.get(slot).to("Europe/London").shift(days=7).format("ddd D MMM")
        assert re.fullmatch(
            rf"local model v1 trained at \d\d:\d\d today; next at {weekday} {at}", status.training
        ), status.training
        assert status.schedule["forecast_detail"]["failure"] is None
        clock.stand_at(slot + 600)
        run.loop.call_soon_threadsafe(run.server.schedule.wake)  # type: ignore[union-attr]
        time.sleep(0.5)
        assert run.node.forecast.store.latest().sequence == 1  # type: ignore[union-attr]  # once a slot


@pytest.mark.integration
def test_a_failing_training_run_leaves_the_node_serving_and_shows_in_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    at = soon("Europe/London")
    clock = Clock(offset=-3600)
    env = scheduled_env(at)
    for name, value in env.items():  # the CLI reads the node's settings as the node does
        monkeypatch.setenv(name, value)
    with running(tmp_path / "a", "coop-a", forecast_policies(tmp_path), env, clock) as run:
        store_readings(run.node, few_days(3))  # type: ignore[arg-type]
        reach_the_slot(run, clock)
        status_file = run.node.settings.base_dir / STATUS_FILE
        deadline = time.monotonic() + 60
        while "forecast" not in read_state(status_file.parent) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert health(run.public)
        assert run.server.forecaster is not None
        assert not run.server.forecaster.done()
        config = str(run.config)
        assert cli.main(["node", "status", "--config", config]) == 0
        out = capsys.readouterr().out
        assert re.search(r"training: +training failed: not enough data yet; next try \d\d:\d\d", out), out
        assert re.search(r"forecasts: +forecast failed: no model yet; next try", out), out
        assert "Traceback" not in out
        assert cli.main(["node", "status", "--config", config, "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        failure = shown["schedule"]["training_detail"]["failure"]
        assert failure["reason"] == "not enough data yet"
        assert failure["code"] == "forecast.too_little_data"
        assert failure["at"].endswith(("+00:00", "+01:00"))  # on the co-op's clock, not unix seconds
        assert shown["schedule"]["forecast_at"] == at


@pytest.mark.integration
def test_a_pooled_coop_retrains_pooled_on_its_peers_aggregates_when_the_week_is_up(tmp_path: Path) -> None:
    from coopfed.forecaster import ModelArtifact
    from coopfed.node.federation.decide import GrantAsk

    from .conftest import _pin

    readings = {cid: few_days(42) for cid in SPECS}
    with (
        running(tmp_path / "a", "coop-a", forecast_policies(tmp_path / "pa"), ENV) as a,
        running(tmp_path / "b", "coop-b", forecast_policies(tmp_path / "pb"), ENV) as b,
    ):
        for run in (a, b):
            store_readings(run.node, readings[run.id])  # type: ignore[arg-type]
        _pin(a, b)
        _pin(b, a)
        periods = readings["coop-b"].periods  # type: ignore[attr-defined]
        ask = GrantAsk(
            ("demand", "generation", "export"), (), "aggregate", "coop_to_coop",
            "dpv:CommunityEnergyForecasting", int(periods[0]), int(periods[-1]) + 1800,
        )  # fmt: skip
        asyncio.run(grantee_of(a.node).obtain_grant("coop-b", ask))
        forecasting = forecasting_of(a.node)
        data = forecasting.data
        peers, _ = asyncio.run(data.peer_aggregates(data.forecast_policy().purpose))
        # as `forecast train --mode pooled`
        first = forecasting.models.train_pooled_model(peers).artifact.metadata
        tz = a.node.settings.place.tz
        week_on = arrow.now(tz).shift(days=7).replace(hour=12, minute=0, second=0, microsecond=0)
        clock = Clock()
        clock.stand_at(week_on.shift(days=-1, minutes=-1).int_timestamp)
        schedule = forecast_schedule_of(a.node, clock)
        clock.stand_at(week_on.shift(days=-1, seconds=1).int_timestamp)
        assert asyncio.run(schedule.run_due())  # six days on: a forecast, no training
        assert "training" not in schedule.state
        assert schedule.state["forecast"].ok
        clock.stand_at(week_on.shift(seconds=1).int_timestamp)
        assert asyncio.run(schedule.run_due())
        assert schedule.state["training"].ok, schedule.state["training"]
        assert schedule.state["forecast"].ok, schedule.state["forecast"]
        store = a.node.forecast.store  # type: ignore[union-attr]
        model = store.latest_model("coop-a", "pooled")
        assert model is not None
        meta = ModelArtifact.load(model.path).metadata
        assert (meta.kind, meta.version, meta.contributors) == (
            "pooled",
            first.version + 1,
            ("coop-a", "coop-b"),
        )
        assert store.latest().models[0].version == meta.version  # type: ignore[union-attr]
