"""BenchmarkService: a member's declared home and their comparison with similar homes (flow 2)."""

from __future__ import annotations

import asyncio

from coopfed.node.auth import caller
from coopfed.node.release.benchmark import BANDS, Benchmarks, Report, Standing
from coopfed.node.rpc import rpc
from coopfed.node.storage import Home, Store
from coopfed.v1 import benchmark_pb2 as pb
from coopfed.v1 import benchmark_pb2_grpc as pb_grpc
from coopfed.v1 import common_pb2, member_pb2

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["BenchmarkService"].full_name
BAND_HOURS = {label: f"{label} ({a:02d}:00-{b % 24:02d}:00)" for label, a, b in BANDS}


class BenchmarkService(pb_grpc.BenchmarkServiceServicer):
    def __init__(self, *, store: Store, benchmarks: Benchmarks) -> None:
        self.store, self.benchmarks = store, benchmarks

    @rpc
    async def GetHome(self, request, context):
        member = caller().id
        homes = await asyncio.to_thread(self.store.homes, [member])
        return home_to_proto(homes.get(member))

    @rpc
    async def SetHome(self, request, context):
        home = home_from_proto(request)
        await asyncio.to_thread(self.store.set_home, caller().id, home if home.declared() else None)
        return home_to_proto(home)

    @rpc
    async def Compare(self, request, context):
        return report_to_proto(await asyncio.to_thread(self.benchmarks.compare, caller().id))


def home_from_proto(msg: member_pb2.Home) -> Home:
    """InvalidData (INVALID_ARGUMENT) for a value out of range."""
    return Home(
        household_size=msg.household_size if msg.HasField("household_size") else None,
        heating=msg.heating or None,
        has_pv=msg.has_pv if msg.HasField("has_pv") else None,
        has_battery=msg.has_battery if msg.HasField("has_battery") else None,
        home_type=msg.home_type or None,
        solar_kw=msg.solar_kw if msg.HasField("solar_kw") else None,
        wind_kw=msg.wind_kw if msg.HasField("wind_kw") else None,
        battery_kwh=msg.battery_kwh if msg.HasField("battery_kwh") else None,
    )


def home_to_proto(home: Home | None) -> member_pb2.Home:
    if home is None:
        return member_pb2.Home()
    return member_pb2.Home(**{k: v for k, v in home.declared().items()})


def report_to_proto(report: Report) -> pb.Comparison:
    n = report.peers
    return pb.Comparison(
        season=report.season,
        period=common_pb2.Period(start_unix=report.period[0], end_unix=report.period[1]),
        similar_homes=n,
        similar_by=[f"{k.replace('_', ' ')}: {v}" for k, v in report.similar_by.items()],
        by_time_of_day=[_standing(s, BAND_HOURS[s.label], f"Your {s.label} use", n) for s in report.bands],
        by_month=[_standing(s, s.label, f"Your use in {s.label}", n) for s in report.months],
        peak_start=report.peak[0],
        peak_end=report.peak[1],
        suggestion=report.suggestion,
        comparisons_this_month=report.comparisons_this_month,
        decision_id=report.decision_id,
    )


def _standing(s: Standing, label: str, subject: str, homes: int) -> pb.Standing:
    words = f"{subject} is higher than {s.higher_than}% of {homes} similar homes."
    return pb.Standing(label=label, kwh=s.kwh, higher_than_percent=s.higher_than, summary=words)
