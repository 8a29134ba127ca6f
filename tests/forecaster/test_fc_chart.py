"""Charts are real PNG files with the forecast, the actuals and the windows drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from coopfed.forecaster import Window, plot_backtest, plot_forecast
from coopfed.forecaster.timegrid import HALF_HOUR

UK = "Europe/London"

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_forecast_writes_a_png(tmp_path: Path) -> None:
    start = 1718359200
    idx = pd.Index(start + np.arange(96) * HALF_HOUR, name="period")
    fc = pd.DataFrame(
        {"demand_kwh": np.linspace(1, 2, 96), "generation_kwh": np.linspace(2, 0, 96)}, index=idx
    )
    found = [
        Window("surplus", start, start + 20 * HALF_HOUR, True),
        Window("peak", start + 60 * HALF_HOUR, start + 70 * HALF_HOUR, False),
    ]
    out = plot_forecast(fc, tmp_path / "fc.png", actual=fc * 1.1, found=found, title="test", tz=UK)
    data = out.read_bytes()
    assert data.startswith(PNG)
    plain = plot_forecast(fc, tmp_path / "plain.png", tz=UK).read_bytes()
    assert plain.startswith(PNG)
    assert plain != data


def test_plot_backtest_writes_a_png(tmp_path: Path) -> None:
    periods = 1733140800 + np.arange(48) * HALF_HOUR
    p = pd.DataFrame(
        {
            "coop": "a", "origin": 1733140800 - 12 * 3600, "period": periods, "day": 1, "peak_threshold": 0.3,
            "actual_demand": 0.25, "actual_generation": 0.0, "federated_demand": np.linspace(0.2, 0.4, 48),
            "federated_generation": 0.01,
        }
    )  # fmt: skip
    assert plot_backtest(p, "a", tmp_path / "bt.png", tz=UK).read_bytes().startswith(PNG)
