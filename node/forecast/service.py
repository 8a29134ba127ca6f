"""ForecastService: the co-op's latest forecast, and nudge streams for members who opted in."""

from __future__ import annotations

import asyncio
import time

from coopfed.node.auth import caller
from coopfed.node.errors import FailedPrecondition, NotFound
from coopfed.node.forecast import convert
from coopfed.node.forecast.context import ForecastContext
from coopfed.node.forecast.store import WindowRecord
from coopfed.node.rpc import rpc
from coopfed.node.storage import Store
from coopfed.v1 import forecast_pb2, forecast_pb2_grpc

SERVICE_NAME = forecast_pb2.DESCRIPTOR.services_by_name["ForecastService"].full_name


def wants_nudges(store: Store, member_id: str) -> bool:
    """Whether the member opted in to nudges (and has not been erased), as stored now."""
    member = store.get_member(member_id)
    return not member.erased and member.settings.nudges


def require_opted_in(store: Store, member_id: str) -> None:
    if not wants_nudges(store, member_id):
        raise FailedPrecondition(
            "you have not opted in to nudges: turn them on in your consent settings "
            "(MemberService.SetConsent with nudges = true, or `coopfed member set-consent --nudges`)",
            code="forecast.nudges_off",
        )


def texts(windows: tuple[WindowRecord, ...], tz: str) -> list[str]:
    """Nudge texts worded for now. The forecaster (XGBoost, pandas, pvlib) loads on first use."""
    from coopfed.node.forecast.forecasting import nudge_texts

    return nudge_texts(windows, tz, int(time.time()))


class ForecastService(forecast_pb2_grpc.ForecastServiceServicer):
    def __init__(self, *, store: Store, forecast: ForecastContext, tz: str) -> None:
        self.store, self.forecast, self.tz = store, forecast, tz  # tz: nudges speak local time

    @rpc
    async def GetForecast(self, request, context):
        latest = await asyncio.to_thread(self.forecast.store.latest)
        if latest is None:
            raise NotFound("the co-op has not made a forecast yet", code="forecast.none")
        return convert.forecast_to_proto(latest, await asyncio.to_thread(texts, latest.windows, self.tz))

    @rpc
    async def SubscribeNudges(self, request, context):
        member_id = caller().id
        await asyncio.to_thread(require_opted_in, self.store, member_id)
        ctx = self.forecast
        sent = 0  # sequence of the last forecast whose nudges went out; the latest goes first
        with ctx.hub.listen() as wake:
            while True:
                wake.clear()  # before looking: a forecast saved after the look wakes the wait
                latest = await asyncio.to_thread(ctx.store.latest)
                if latest is None or latest.sequence <= sent:
                    await wake.wait(ctx.conf.poll_interval_s)
                    if not await asyncio.to_thread(wants_nudges, self.store, member_id):
                        return
                    continue
                if not await asyncio.to_thread(wants_nudges, self.store, member_id):
                    return  # opted out (or erased) since: nothing more is sent
                found = latest.open_windows(int(time.time()))
                for window, text in zip(found, await asyncio.to_thread(texts, found, self.tz), strict=True):
                    yield convert.nudge_to_proto(window, text, latest)
                sent = latest.sequence
