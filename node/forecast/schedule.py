"""The node forecasts by itself: every day at `[forecast_schedule] forecast_at` on the co-op's
clock, retraining first once the newest model is `retrain_every_days` old, or is one this version
cannot use (a format it no longer reads).

A slot is a local wall-clock time, so 12:00 stays 12:00 across clock changes (the slots either
side are 23 or 25 hours apart). Training runs in a worker thread and peers are reached on the
node's event loop, which is never blocked. A failed run is logged (once per reason), kept in
`forecast-schedule.json` beside the config for `coopfed node status`, and tried again at the next
slot; it never stops the node. A node that was stopped over a slot catches up when it serves again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import arrow

from coopfed.federation.keys import write_public
from coopfed.node.errors import InvalidArgument
from coopfed.node.forecast.store import ForecastStore
from coopfed.node.settings import Settings

if TYPE_CHECKING:
    from coopfed.node.forecast.context import ForecastContext
    from coopfed.node.forecast.exchange import ModelExchange
    from coopfed.node.forecast.forecasting import Forecasting

log = logging.getLogger(__name__)
STATUS_FILE = "forecast-schedule.json"
CHECK_S = 60.0  # the longest sleep: a clock that jumps (suspend, a time sync) is noticed within it
_AT = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9]))?")
# Refusals that only time cures, in the words `coopfed node status` shows.
_REASONS = {
    "forecast.too_little_data": "not enough data yet",
    "forecast.no_data": "not enough data yet",
    "forecast.no_model": "no model yet",
    "forecast.history": "not enough recent data",
}


# --- when ---------------------------------------------------------------------------------------


def slot_on(day: dt.date, at: dt.time, tz: str) -> int:
    """The instant of `at` on the local `day`: once a day whatever the clocks do. A time the
    clocks skip (spring forward) comes the gap's length later; one they repeat, the first time."""
    return int(dt.datetime.combine(day, at, tzinfo=ZoneInfo(tz)).timestamp())


def local_date(at: float, tz: str) -> dt.date:
    return dt.datetime.fromtimestamp(at, ZoneInfo(tz)).date()


@dataclass(frozen=True)
class Plan:
    """The schedule of one co-op: a daily forecast at `at` local time, retraining every `every_days`."""

    tz: str
    at: dt.time
    every_days: int

    @classmethod
    def of(cls, settings: Settings) -> Plan:
        conf = settings.forecast_schedule
        match = _AT.fullmatch(conf.forecast_at.strip())
        if not match:
            raise InvalidArgument(
                "[forecast_schedule] forecast_at must be a local time like "
                f'"12:00", not {conf.forecast_at!r}',
                code="config.forecast_schedule",
            )
        if conf.retrain_every_days < 1:
            raise InvalidArgument(
                "[forecast_schedule] retrain_every_days must be 1 or more", code="config.forecast_schedule"
            )
        hour, minute, second = (int(g or 0) for g in match.groups())
        return cls(settings.place.tz, dt.time(hour, minute, second), conf.retrain_every_days)

    def next(self, now: float) -> int:
        """The first slot after `now`."""
        day = local_date(now, self.tz)
        slot = slot_on(day, self.at, self.tz)
        return slot if slot > now else slot_on(day + dt.timedelta(days=1), self.at, self.tz)

    def last(self, now: float) -> int:
        """The latest slot at or before `now`."""
        day = local_date(now, self.tz)
        slot = slot_on(day, self.at, self.tz)
        return slot if slot <= now else slot_on(day - dt.timedelta(days=1), self.at, self.tz)

    def training_due(self, trained_at: float | None, slot: int) -> bool:
        """Whether the slot retrains: no model yet, or one trained `every_days` local days before."""
        if trained_at is None:
            return True
        return local_date(trained_at, self.tz) <= local_date(slot, self.tz) - dt.timedelta(
            days=self.every_days
        )

    def next_training(self, trained_at: float | None, now: float) -> int:
        """The slot that retrains next (a failed run leaves the model old: the next slot)."""
        first = self.next(now)
        if trained_at is None:
            return first
        due_day = local_date(trained_at, self.tz) + dt.timedelta(days=self.every_days)
        return max(first, slot_on(due_day, self.at, self.tz))


# --- what happened --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One scheduled run of training or forecasting."""

    at: int  # when it ran
    ok: bool
    detail: str  # what was made ("local model v3", "forecast #12"), or why it failed
    reason: str = ""  # a failure in a few plain words ("not enough data yet")
    code: str = ""  # the failure's stable code


def read_state(folder: Path) -> dict[str, Outcome]:
    """The last scheduled "forecast" and "training" outcomes kept in the node's folder."""
    try:
        raw = json.loads((folder / STATUS_FILE).read_text("utf-8"))
        return {what: Outcome(**raw[what]) for what in ("forecast", "training") if raw.get(what)}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        log.warning("ignoring %s: %s", folder / STATUS_FILE, exc)
        return {}


@dataclass(frozen=True)
class HeldModel:
    """The co-op's newest model of the mode in use."""

    name: str  # "local model v3"
    saved_at: float
    refused: str = ""  # why this version cannot use it (a format it no longer reads): retrain


def newest_model(store: ForecastStore, coop_id: str) -> HeldModel | None:
    from coopfed.forecaster import ArtifactFormatError, ModelArtifact  # XGBoost: seconds to import

    kind = "pooled" if store.mode() == "pooled" else "local"
    model = store.latest_model(coop_id, kind)
    if model is None:
        return None
    try:
        ModelArtifact.load(model.path)
        refused = ""
    except ArtifactFormatError as exc:  # e.g. coopfed-model/1: forecasting would fail every day
        refused = str(exc).split(":")[0]
    return HeldModel(f"{kind} model v{model.version}", model.path.stat().st_mtime, refused)


def trained_at(model: HeldModel | None) -> float | None:
    """When the model in use was trained; None (training due) without one it can use."""
    return model.saved_at if model is not None and not model.refused else None


async def _attempt(what: str, at: int, work: Coroutine[Any, Any, str]) -> Outcome:
    """Run one scheduled step; a failure becomes its outcome, in plain words."""
    from coopfed.node.rpc import as_coopfed_error

    try:
        return Outcome(at, True, await work)
    except Exception as exc:  # no failure of a run may stop the schedule or the node
        err = as_coopfed_error(exc)
        if err is None:  # a bug or a disk error: the node serves on, and the log keeps the trace
            log.error("scheduled %s failed", what, exc_info=exc)
            return Outcome(
                at, False, f"{type(exc).__name__}: {exc}", "an unexpected error (see the node's log)"
            )
    reason = _REASONS.get(err.code) or err.message.split(". ")[0].rstrip(".")
    return Outcome(at, False, err.message, reason, err.code)


# --- running it -----------------------------------------------------------------------------------


class ForecastSchedule:
    """Run by the serving node: at each slot, retrain if due, then forecast (which wakes the
    members' nudge streams). `forecasting` builds the forecasting parts when a slot runs (the
    forecaster's stack loads then, not when the node starts); `clock` is injectable so tests can
    stand at any instant."""

    def __init__(
        self, *, settings: Settings, forecast: ForecastContext, forecasting: Callable[[], Forecasting],
        exchange: ModelExchange, clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.plan = Plan.of(settings)  # refuses a wrong [forecast_schedule] before serving
        self.forecast, self.forecasting, self.exchange = forecast, forecasting, exchange
        self.node_id = settings.node.id
        self.clock = clock
        self.folder = settings.base_dir
        self.state = read_state(self.folder)
        # A node with no schedule kept waits for its first slot rather than run at once.
        self.started = int(clock())
        self._wake = asyncio.Event()

    def due(self, now: float) -> int | None:
        """The slot to run now, where one has passed that was not run (nor forecast by the CLI)."""
        slot = self.plan.last(now)
        ran = self.state["forecast"].at if "forecast" in self.state else self.started
        latest = self.forecast.store.latest()
        made = latest.made_at if latest is not None else 0
        return slot if slot > max(ran, made) else None

    async def run(self) -> None:
        """Until cancelled: run each slot as it comes. A failure never ends the loop."""
        while True:
            try:
                await self.run_due()
            except Exception:  # a bug: logged, and the next slot is tried
                log.exception("the forecast schedule failed")
            wait = self.plan.next(self.clock()) - self.clock()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(max(wait, 0.05), CHECK_S))
            self._wake.clear()

    def wake(self) -> None:
        """Look at the clock again now (on the node's event loop)."""
        self._wake.set()

    async def run_due(self) -> bool:
        """Run the slot that is due, if any; whether one ran."""
        now = self.clock()
        slot = await asyncio.to_thread(self.due, now)
        if slot is None:
            return False
        model = await asyncio.to_thread(newest_model, self.forecast.store, self.node_id)
        if self.plan.training_due(trained_at(model), slot):
            self._record("training", await _attempt("training", int(now), self._train()))
        self._record("forecast", await _attempt("forecast", int(now), self._forecast(int(now))))
        return True

    async def _train(self) -> str:
        forecasting = self.forecasting()
        data, models = forecasting.data, forecasting.models
        if self.forecast.store.mode() == "pooled":
            peers, problems = await data.peer_aggregates(data.forecast_policy().purpose)
            trained = await asyncio.to_thread(models.train_pooled_model, peers)
        else:
            trained = await asyncio.to_thread(models.train_local_model)
            problems = (await self.exchange.exchange()).failures
        for peer, why in problems.items():
            log.warning("scheduled training went on without %s: %s", peer, why)
        meta = trained.artifact.metadata
        return f"{meta.kind} model v{meta.version} on {meta.training_rows} half-hours"

    async def _forecast(self, at: int) -> str:
        def forecast() -> str:
            forecasting = self.forecasting()
            made, _ = forecasting.make_forecast(origin=forecasting.default_origin(at))
            return f"forecast #{made.sequence}"

        return await asyncio.to_thread(forecast)

    def _record(self, what: str, outcome: Outcome) -> None:
        """Keep the outcome for `node status`; log it, a failure repeated only quietly."""
        before = self.state.get(what)
        self.state[what] = outcome
        ok_training = outcome.ok and what == "training"
        nxt = self.plan.next_training(outcome.at, outcome.at) if ok_training else self.plan.next(outcome.at)
        when = arrow.get(nxt).to(self.plan.tz).format("ddd D MMM HH:mm")
        if outcome.ok:
            log.info("scheduled %s done: %s; next at %s", what, outcome.detail, when)
        else:
            again = before is not None and not before.ok and before.reason == outcome.reason
            log.log(
                logging.INFO if again else logging.WARNING,
                "scheduled %s %s: %s; next try %s",
                what,
                "still failing" if again else "failed",
                outcome.detail.rstrip("."),
                when,
            )
        data = {k: asdict(v) for k, v in self.state.items()}
        try:
            write_public(self.folder / STATUS_FILE, json.dumps(data, indent=2).encode("utf-8"))
        except OSError as exc:
            log.warning("cannot write %s: %s", self.folder / STATUS_FILE, exc)


# --- in words, for `coopfed node status` ----------------------------------------------------------


def when_words(at: float, now: float, tz: str) -> str:
    """'12:00 today', '12:00 tomorrow', 'Monday 12:00', 'Mon 1 Dec 12:00': on the co-op's clock."""
    moment, today = arrow.get(at).to(tz), arrow.get(now).to(tz)
    days = (moment.date() - today.date()).days
    clock = moment.format("HH:mm")
    if days in (-1, 0, 1):
        return f"{clock} {('yesterday', 'today', 'tomorrow')[days + 1]}"
    if 1 < days < 7:
        return f"{moment.format('dddd')} {clock}"
    return f"{moment.format('ddd D MMM')} {clock}"


def schedule_status(settings: Settings, store: ForecastStore, *, serving: bool, now: float) -> dict[str, Any]:
    """The schedule's state for `node status`: "forecast" and "training" in words and, for --json,
    the instants behind them. What was made by the CLI counts as much as what the schedule made."""
    conf, tz = settings.forecast_schedule, settings.place.tz
    plan = Plan.of(settings) if conf.enabled else None
    latest, model = store.latest(), newest_model(store, settings.node.id)
    made = {
        "forecast": (f"forecast #{latest.sequence}", float(latest.made_at)) if latest else None,
        "training": (f"{model.name} trained", model.saved_at) if model and not model.refused else None,
    }
    state = read_state(settings.base_dir) if conf.enabled else {}
    out: dict[str, Any] = {
        "enabled": conf.enabled,
        "forecast_at": conf.forecast_at,
        "retrain_every_days": conf.retrain_every_days,
    }
    for what in ("forecast", "training"):
        last, outcome = made[what], state.get(what)
        failure = outcome if outcome and not outcome.ok and (last is None or outcome.at >= last[1]) else None
        nxt = None
        if plan is not None and serving:
            again = what == "forecast" or failure is not None or last is None
            nxt = plan.next(now) if again else plan.next_training(last[1] if last else None, now)
        if failure is not None:
            words = f"{what} failed: {failure.reason}"
        elif what == "training" and model is not None and model.refused:
            words = f"{model.name} cannot be used ({model.refused}): training due"
        else:
            words = f"{last[0]} at {when_words(last[1], now, tz)}" if last else f"no {what} yet"
        if plan is None:
            words += "; not scheduled ([forecast_schedule] enabled = false)"
        elif nxt is not None:
            words += f"; next {'try' if failure else 'at'} {when_words(nxt, now, tz)}"
        out[what] = words
        out[f"{what}_detail"] = {
            "last_at": _iso(last[1], tz) if last else None,
            "next_at": _iso(nxt, tz) if nxt is not None else None,
            "failure": None
            if failure is None
            else {
                "at": _iso(failure.at, tz),
                "reason": failure.reason,
                "message": failure.detail,
                "code": failure.code,
            },
        }
    return out


def _iso(at: float, tz: str) -> str:
    return arrow.get(at).to(tz).isoformat()
