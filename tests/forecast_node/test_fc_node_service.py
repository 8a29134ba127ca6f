"""ForecastService over gRPC: the latest forecast, nudges for opted-in members only, and the CLI
whose forecasts reach the running node's nudge streams."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from coopfed.node import cli
from coopfed.node.services import forecasting_of
from coopfed.v1 import forecast_pb2, forecast_pb2_grpc

from .conftest import END, PEAK_PERCENTILE, Coops, MemberClient, Stream

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(coops: Coops) -> None:
    forecasting_of(coops.a.node).models.train_local_model()


@pytest.fixture
def member(coops: Coops) -> Iterator[MemberClient]:
    client = MemberClient(coops.a.public, "Grace")
    yield client
    client.close()


def test_the_latest_forecast_is_served_to_members(coops: Coops, trained: None, member: MemberClient) -> None:
    made, _ = forecasting_of(coops.a.node).make_forecast(mode="federated")
    got = member.forecasts.GetForecast(forecast_pb2.GetForecastRequest(), metadata=member.md)
    assert (got.coop_id, got.sequence) == ("coop-a", made.sequence)
    assert got.origin.seconds == made.origin
    periods = np.array([p.period_start_unix for p in got.periods])
    np.testing.assert_array_equal(periods, made.origin + 1800 * np.arange(96))
    np.testing.assert_allclose([p.demand_kwh for p in got.periods], made.demand_kwh)
    assert all(p.demand_kwh >= 0 and p.generation_kwh >= 0 for p in got.periods)
    assert got.peak_percentile == PEAK_PERCENTILE  # from the co-op's policy data
    demand = dict(zip(periods.tolist(), (p.demand_kwh for p in got.periods), strict=True))
    peaks = [w for w in got.windows if w.kind == forecast_pb2.WINDOW_KIND_PEAK]
    assert peaks
    for w in peaks:  # every half-hour of a peak window is above the threshold
        assert all(demand[p] > got.peak_threshold_kwh for p in range(w.start_unix, w.end_unix, 1800))
        assert 0 <= w.confidence <= 1
        assert w.nudge.split(" busy ")[0] in ("Very likely", "Likely", "Possibly")
    for p in got.periods:  # the band, never crossing
        assert p.HasField("demand_p10_kwh")
        assert 0 <= p.demand_p10_kwh <= p.demand_p50_kwh <= p.demand_p90_kwh
        assert 0 <= p.generation_p10_kwh <= p.generation_p50_kwh <= p.generation_p90_kwh
    assert got.model.mode == forecast_pb2.TRAINING_MODE_FEDERATED
    own = next(m for m in got.model.models if m.trained_by == "coop-a")
    assert (own.kind, own.contributors) == ("local", ["coop-a"])
    assert len(own.sha256) == 64
    assert sum(m.weight for m in got.model.models) == pytest.approx(1.0)


def test_forecasts_need_a_member_token(coops: Coops) -> None:
    with grpc.insecure_channel(coops.a.public) as channel:
        stub = forecast_pb2_grpc.ForecastServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.GetForecast(forecast_pb2.GetForecastRequest(), timeout=10)
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as info:
            list(stub.SubscribeNudges(forecast_pb2.SubscribeNudgesRequest(), timeout=10))
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_no_forecast_yet_is_not_found(coops: Coops) -> None:
    client = MemberClient(coops.b.public, "Ada")  # B has made no forecast
    try:
        with pytest.raises(grpc.RpcError) as info:
            client.forecasts.GetForecast(forecast_pb2.GetForecastRequest(), metadata=client.md)
        assert info.value.code() is grpc.StatusCode.NOT_FOUND
    finally:
        client.close()


def test_nudges_go_to_opted_in_members_only(coops: Coops, trained: None, member: MemberClient) -> None:
    node = coops.a.node
    refused = Stream(member)
    error = refused.next()
    assert isinstance(error, grpc.RpcError)
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "not opted in to nudges" in error.details()
    assert refused.next() is END

    member.nudges(True)
    first, _ = forecasting_of(node).make_forecast(mode="federated")
    stream = Stream(member)
    try:
        nudge = stream.next()  # the latest forecast's nudges come first
        assert isinstance(nudge, forecast_pb2.Nudge)
        assert nudge.forecast_sequence == first.sequence
        assert nudge.end_unix > time.time() - 60
        assert nudge.text
        second, _ = forecasting_of(node).make_forecast(mode="federated")  # a new forecast reaches the stream
        assert stream.until_sequence(second.sequence).forecast_made_at.seconds == second.made_at
        member.nudges(False)
        third, _ = forecasting_of(node).make_forecast(mode="federated")
        while (item := stream.next()) is not END:  # the stream ends without the third's nudges
            assert isinstance(item, forecast_pb2.Nudge), item
            assert item.forecast_sequence == second.sequence
        assert third.windows  # there were nudges to send
    finally:
        stream.cancel()


def test_an_idle_stream_ends_soon_after_the_member_opts_out(
    coops: Coops, trained: None, member: MemberClient
) -> None:
    member.nudges(True)
    made = coops.a.node.forecast.store.latest()
    latest = made or forecasting_of(coops.a.node).make_forecast(mode="federated")[0]
    stream = Stream(member)
    try:
        stream.until_sequence(latest.sequence)
        member.nudges(False)  # no new forecast: the stream's periodic check ends it
        while (item := stream.next()) is not END:
            assert isinstance(item, forecast_pb2.Nudge), item
            assert item.forecast_sequence == latest.sequence
    finally:
        stream.cancel()


def test_cli_trains_predicts_and_its_forecast_reaches_the_streams(
    coops: Coops, member: MemberClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(coops.a.config)
    member.nudges(True)
    before = coops.a.node.forecast.store.latest()
    stream = Stream(member)
    try:
        if before is not None:
            stream.until_sequence(before.sequence)  # subscribed: the current nudges arrived
        assert cli.main(["forecast", "train", "--config", config, "--rounds", "4"]) == 0
        out = capsys.readouterr().out
        assert "signed local model" in out
        assert "coop-b holds our" in out
        chart = tmp_path / "forecast.png"
        assert cli.main(["forecast", "predict", "--config", config, "--chart", str(chart)]) == 0
        out = capsys.readouterr().out
        assert "nudge" in out
        assert "busy" in out
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        made = coops.a.node.forecast.store.latest()
        # The CLI ran as a separate node process would: the running node finds its forecast.
        assert stream.until_sequence(made.sequence).forecast_sequence == made.sequence
    finally:
        stream.cancel()
    assert cli.main(["forecast", "models", "--config", config]) == 0
    assert "refused" not in capsys.readouterr().out


def test_cli_backtest_prints_scores(coops: Coops, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["forecast", "backtest", "--config", str(coops.a.config), "--days", "7", "--rounds", "4"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "seasonal-naive" in out
    assert "federated" in out
