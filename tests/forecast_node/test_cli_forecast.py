"""The README's forecast commands on demo-length data: six weeks of a simulated co-op in a node folder."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from coopfed.forecaster import CoopSpec, england, simulate_coop
from coopfed.node import cli
from coopfed.node.model import DATASETS, ConsentLevel, ConsentSettings
from coopfed.node.runtime import init_node, open_node
from coopfed.node.settings import load_settings
from tests.node.conftest import POLICIES

DAYS = 42  # as long as `coopfed demo` simulates
GREEN, RED = ConsentSettings(level=ConsentLevel.GREEN), ConsentSettings(level=ConsentLevel.RED)


def coop_folder(folder: Path, *, ends_days_ago: int = 0, sharing: int = 6, partial: int = 0) -> Path:
    """A node folder holding DAYS of 8 simulated households; `sharing` of them consent green (k = 5).
    With `partial`, the last sharing member joined only `partial` days before the end."""
    end = dt.date.today() - dt.timedelta(days=ends_days_ago)
    spec = CoopSpec("riverside", households=8, site=england("Bristol", 51.45, -2.59), pv_share=0.4, seed=7)
    readings = simulate_coop(spec, end - dt.timedelta(days=DAYS), end).readings
    config = init_node(folder, node_id="riverside", name="Riverside", listen="127.0.0.1:0", policies=POLICIES)
    with open_node(load_settings(config, environ={})) as node:
        for i, member_id in enumerate(readings.members["member_id"]):
            node.store.create_member(
                member_id, f"Member {i}", GREEN if i < sharing else RED, admitted_by="test"
            )
            rows = slice(-48 * partial, None) if partial and i == sharing - 1 else slice(None)
            series = [
                (ds, readings.periods[rows], getattr(readings, ds)[rows, i].astype(float)) for ds in DATASETS
            ]
            node.store.put_readings(member_id, series)
    return config


@pytest.fixture(autouse=True)
def few_rounds(monkeypatch):
    monkeypatch.setenv("COOPFED_FORECAST__ROUNDS", "10")  # the node's [forecast] rounds, via environment


def forecast(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(["forecast", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_the_readme_forecast_commands_run_on_six_weeks(tmp_path, capsys, monkeypatch):
    config = coop_folder(tmp_path / "mycoop")
    monkeypatch.chdir(tmp_path)
    for mode in ("federated", "pooled"):
        code, out = forecast(capsys, "train", "--config", str(config), "--mode", mode)
        assert code == 0, out
        assert "signed" in out
    code, out = forecast(capsys, "backtest", "--config", str(config), "--days", "28")
    assert code == 0, out
    assert "testing on the last 21 days, not 28" in out  # six weeks leave three after the history
    assert "seasonal-naive" in out
    assert "federated" in out
    code, out = forecast(capsys, "predict", "--config", str(config), "--chart", "forecast.png")
    assert code == 0, out
    assert (tmp_path / "forecast.png").read_bytes()[:4] == b"\x89PNG"
    code, out = forecast(capsys, "models", "--config", str(config), "--json")
    assert code == 0, out
    assert [m["kind"] for m in json.loads(out)] == ["local", "pooled"]


def test_backtest_needs_no_rounds_option(tmp_path, capsys):
    config = coop_folder(tmp_path / "c")
    code, out = forecast(capsys, "backtest", "--config", str(config), "--days", "7")
    assert code == 0, out
    assert "local" in out
    assert "unexpected" not in out


def test_predict_falls_back_to_the_end_of_the_data(tmp_path, capsys):
    config = coop_folder(tmp_path / "c", ends_days_ago=60)  # nothing in the five weeks before now
    assert forecast(capsys, "train", "--config", str(config), "--mode", "pooled")[0] == 0
    code, out = forecast(capsys, "predict", "--config", str(config))
    assert code == 0, out
    end = dt.date.today() - dt.timedelta(days=60)
    assert f"from {end:%a} {end.day} {end:%b} 00:00" in out


@pytest.mark.parametrize(("sharing", "partial"), [(4, 0), (5, 3)])
def test_federated_training_with_fewer_than_k_members_explains_k(tmp_path, capsys, sharing, partial):
    config = coop_folder(tmp_path / "c", sharing=sharing, partial=partial)
    code, out = forecast(capsys, "train", "--config", str(config), "--mode", "federated")
    assert code == 1, out
    assert "k = 5" in out
    assert "minimum group size" in out
    assert "coop_to_coop" not in out
    assert "Traceback" not in out
    assert "unexpected" not in out
    # Inside the co-op every member counts: the pooled model trains.
    assert forecast(capsys, "train", "--config", str(config), "--mode", "pooled")[0] == 0
