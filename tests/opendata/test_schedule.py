"""Scheduled open data on a real node: due once per local month, remembered in the store across
a restart, a publication from the CLI counts too, and a refusal never stops the schedule."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from coopfed.node.errors import FailedPrecondition, InvalidArgument
from coopfed.node.model import HALF_HOUR, ConsentLevel, ConsentSettings
from coopfed.node.opendata.schedule import Schedule
from coopfed.node.runtime import Node, init_node, open_node
from coopfed.node.services import publisher_of
from coopfed.node.settings import Settings, load_settings

POLICIES = Path(__file__).resolve().parents[2] / "policies"
DAY = 1_772_409_600 + np.arange(48, dtype=np.int64) * HALF_HOUR  # 2 March 2026
MONTH = 31 * 86400


def _settings(folder: Path, every: str) -> Settings:
    config = init_node(folder, node_id="coop-s", name="S", listen="127.0.0.1:0", policies=POLICIES)
    return load_settings(
        config, environ={"COOPFED_STORAGE__SYNCHRONOUS": "NORMAL", "COOPFED_OPEN_DATA__EVERY": every}
    )


def _schedule(node: Node, settings: Settings | None = None) -> Schedule:
    """The schedule as the running node builds it."""
    return Schedule(settings=settings or node.settings, store=node.store, publish=publisher_of(node).publish)


def _members(node: Node) -> None:
    for i in range(10):
        node.store.create_member(
            f"g{i}", f"G{i}", ConsentSettings(level=ConsentLevel.GREEN), admitted_by="test"
        )
        node.store.put_readings(f"g{i}", [("demand", DAY, np.full(48, 1.0))])


def test_a_monthly_schedule_publishes_once_a_month_and_remembers_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "coop", "monthly")
    now = int(time.time())
    with open_node(settings) as node:
        schedule = _schedule(node)
        with pytest.raises(FailedPrecondition):  # nothing to publish yet; still due
            schedule.run_once(now)
        assert schedule.due(now)
        _members(node)
        made = schedule.run_once(now)
        assert made is not None
        assert made.folder.parent == settings.path("opendata")
        package = json.loads((made.folder / "datapackage.json").read_text())
        assert package["resources"]
        assert not schedule.due(now)
        assert schedule.run_once(now + 60) is None
    with open_node(settings) as node:  # a restart remembers the last publication
        schedule = _schedule(node)
        assert not schedule.due(now)
        assert schedule.due(now + MONTH)
        publisher_of(node).publish(tmp_path / "by-hand")  # a publication from the CLI counts too
        assert not schedule.due(now)


def test_never_and_a_bad_setting(tmp_path: Path) -> None:
    with open_node(_settings(tmp_path / "never", "")) as node:
        _members(node)
        assert not _schedule(node).due()
        assert _schedule(node).run_once() is None
        bad = replace(node.settings, open_data=replace(node.settings.open_data, every="daily"))
        with pytest.raises(InvalidArgument) as refused:
            _schedule(node, bad)
        assert "weekly" in refused.value.message


def test_the_running_schedule_survives_a_refusal_and_then_publishes(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "coop", "weekly")
    with open_node(settings) as node:

        async def scenario() -> None:
            task = asyncio.create_task(_schedule(node).run(check_every_s=0.05))
            await asyncio.sleep(0.3)  # no readings: refused, logged, tried again
            assert node.store.last_publication() is None
            await asyncio.to_thread(_members, node)
            for _ in range(100):
                if node.store.last_publication() is not None:
                    break
                await asyncio.sleep(0.1)
            assert not task.done()
            task.cancel()

        asyncio.run(scenario())
        assert node.store.last_publication() is not None
        assert len(list(settings.path("opendata").iterdir())) == 1


def test_the_node_server_runs_the_schedule_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    from coopfed.node.server import NodeServer

    settings = _settings(tmp_path / "coop", "monthly")
    with open_node(settings) as node:
        _members(node)

        async def serve() -> None:
            server = NodeServer(node)
            await server.start()
            for _ in range(100):
                if node.store.last_publication() is not None:
                    break
                await asyncio.sleep(0.1)
            await server.stop(0)

        asyncio.run(serve())
        assert node.store.last_publication() is not None
        bad = replace(node, settings=replace(settings, open_data=replace(settings.open_data, every="daily")))
        with pytest.raises(InvalidArgument):
            asyncio.run(NodeServer(bad).start())
