"""Real weather: EPW files, Open-Meteo's JSON and CSV (fixtures in its documented format), its API
through a local HTTP server replaying that format, and what a backtest does without forecasts."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import arrow
import numpy as np
import pandas as pd
import pytest

from coopfed.forecaster import CoopData, england
from coopfed.forecaster.evaluate import _honest_weather
from coopfed.forecaster.weather_sources import (
    OpenMeteo,
    WeatherFiles,
    WeatherSourceError,
    parse_open_meteo,
    read_epw,
)

DATA = Path(__file__).parent / "data"
BRISTOL = england("Bristol", 51.45, -2.59, 20)


def _utc(text: str) -> int:
    return arrow.get(text).int_timestamp


def test_open_meteo_json_becomes_half_hours_in_si_units() -> None:
    fc = parse_open_meteo((DATA / "open_meteo_forecast.json").read_bytes(), issued=_utc("2024-06-01T06:00Z"))
    assert list(fc.columns) == ["issued", "period", "temp_c", "ghi", "wind_ms"]
    assert fc["period"].tolist() == list(range(_utc("2024-06-01T08:00Z"), _utc("2024-06-01T13:00Z"), 1800))
    first = fc.iloc[0]
    assert first["temp_c"] == pytest.approx(12.5)  # instants interpolated to 08:15
    assert first["ghi"] == pytest.approx(350.0)  # the 08:00-09:00 mean, stamped 09:00
    assert first["wind_ms"] == pytest.approx(18.9 / 3.6)  # km/h to m/s
    assert fc.iloc[-1]["ghi"] == pytest.approx(620.0)
    assert (fc["issued"] == _utc("2024-06-01T06:00Z")).all()


def test_open_meteo_csv_reads_its_local_times_and_units() -> None:
    obs = parse_open_meteo((DATA / "open_meteo_archive.csv").read_text(encoding="utf-8"))
    assert obs.index[0] == _utc("2024-06-01T08:00Z")  # 10:00 CEST
    assert obs.iloc[0].tolist() == pytest.approx([15.5, 500.0, 3.25])  # wind already in m/s
    assert len(obs) == 6


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ('{"error": true, "reason": "Latitude must be in range of -90 to 90°. Given: 91.0."}', "Latitude"),
        ('{"hourly": {"time": ["2024-06-01T00:00"]}}', "lacks temperature_2m"),
        ("not, a, table", "location block"),
        ("{broken", "not an Open-Meteo"),
    ],
)
def test_bad_open_meteo_payloads_say_why(payload: str, why: str) -> None:
    with pytest.raises(WeatherSourceError, match=why):
        parse_open_meteo(payload)


def _epw(path: Path, hours: int = 48) -> Path:
    head = [
        "LOCATION,Bristol,ENG,GBR,SRC,037100,51.45,-2.59,0.0,20.0",
        "DESIGN CONDITIONS,0",
        "TYPICAL/EXTREME PERIODS,0",
        "GROUND TEMPERATURES,0",
        "HOLIDAYS/DAYLIGHT SAVINGS,No,0,0,0",
        "COMMENTS 1,test",
        "COMMENTS 2,test",
        "DATA PERIODS,1,1,Data,Sunday, 1/ 1,12/31",
    ]
    rows = []
    for h in range(hours):
        day, hour = divmod(h, 24)
        ghi = max(0.0, 400.0 - 50.0 * abs(hour - 12))
        fields = [2024, 1, day + 1, hour + 1, 60, "?", 5.0 + hour / 10, 2.0, 80, 101325, 0, 0, 300, ghi]
        fields += [0, ghi / 2, 0, 0, 0, 0, 180, 4.0 + hour / 24, 5, 5, 20, 9999, 9, 999999999, 10, 0.1, 0, 88]
        fields += [0.2, 0, 0]
        rows.append(",".join(str(f) for f in fields))
    path.write_text("\n".join(head + rows) + "\n")
    return path


def test_epw_observations_via_pvlib(tmp_path: Path) -> None:
    obs = read_epw(_epw(tmp_path / "bristol.epw"))
    assert obs.index[0] == _utc("2024-01-01T01:00Z")  # the first instant is 01:00 (UTC+0 here)
    assert obs.loc[_utc("2024-01-01T12:00Z"), "ghi"] == pytest.approx(400.0)
    assert obs.loc[_utc("2024-01-01T12:30Z"), "ghi"] == pytest.approx(400.0)
    assert obs.loc[_utc("2024-01-01T12:30Z"), "temp_c"] == pytest.approx(6.175)  # 12:45, of 6.1 and 6.2
    files = WeatherFiles(
        observations=[tmp_path / "bristol.epw"],
        forecasts=[(_utc("2024-06-01T06:00Z"), DATA / "open_meteo_forecast.json")],
    )
    weather = files.load(BRISTOL)
    assert weather.observations is not None
    assert weather.forecasts is not None
    assert len(weather.observations) == len(obs)
    with pytest.raises(WeatherSourceError, match="EPW"):
        read_epw(tmp_path / "missing.epw")


class _Replay(BaseHTTPRequestHandler):
    """Answers like api.open-meteo.com/v1/forecast, from the documented response format."""

    asked: list[dict[str, list[str]]] = []

    def do_GET(self) -> None:
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        type(self).asked.append(q)
        if url.path != "/v1/forecast" or not -90 <= float(q["latitude"][0]) <= 90:
            body, status = {"error": True, "reason": "Latitude must be in range of -90 to 90°."}, 400
        else:
            body, status = json.loads((DATA / "open_meteo_forecast.json").read_text()), 200
            hourly = body["hourly"]
            if q.get("timeformat") == ["unixtime"]:
                hourly["time"] = [_utc(t + "Z") for t in hourly["time"]]
                body["hourly_units"]["time"] = "unixtime"
            if q.get("wind_speed_unit") == ["ms"]:
                hourly["wind_speed_10m"] = [v / 3.6 for v in hourly["wind_speed_10m"]]
                body["hourly_units"]["wind_speed_10m"] = "m/s"
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def open_meteo() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Replay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/forecast"
    server.shutdown()
    server.server_close()


def test_the_open_meteo_client_asks_for_the_site_and_reads_the_reply(open_meteo: str) -> None:
    issued = _utc("2024-06-01T07:55Z")
    got = OpenMeteo(open_meteo).load(BRISTOL, issued=issued)
    q = _Replay.asked[-1]
    assert q["latitude"] == ["51.4500"]
    assert q["longitude"] == ["-2.5900"]
    assert q["hourly"] == ["temperature_2m,shortwave_radiation,wind_speed_10m"]
    assert got.forecasts is not None
    assert got.observations is None
    expected = parse_open_meteo((DATA / "open_meteo_forecast.json").read_bytes(), issued=issued)
    pd.testing.assert_frame_equal(got.forecasts, expected)


def test_the_open_meteo_client_reports_refusals_and_absence(open_meteo: str) -> None:
    with pytest.raises(WeatherSourceError, match="answered 400: Latitude"):
        OpenMeteo(open_meteo.replace("/v1/forecast", "/v1/nowhere")).load(BRISTOL)
    with pytest.raises(WeatherSourceError, match="cannot reach"):
        OpenMeteo("http://127.0.0.1:9/v1/forecast", timeout_s=2).load(BRISTOL)


def test_a_backtest_without_forecasts_says_observations_stand_in(coops: list[CoopData]) -> None:
    coop = coops[0]
    kept, why = _honest_weather(coop)
    assert kept is coop
    assert why == "forecasts issued by each origin"
    assert coop.weather is not None
    no_fc = CoopData(coop.coop_id, coop.aggregates, coop.site, weather=coop.weather)
    stood_in, why = _honest_weather(no_fc)
    assert "observed weather stands in" in why
    fc = stood_in.weather_forecast
    assert fc is not None
    assert (fc["period"] >= fc["issued"]).all()  # issued at the origin, for what follows it
    np.testing.assert_allclose(fc.set_index("period")["temp_c"], coop.weather["temp_c"].reindex(fc["period"]))
    assert _honest_weather(coop.without_weather(astronomy=False))[1] == "none (features: calendar only)"
