"""The node's background work: a failing task is logged and counted, the rest go on; stop awaits all."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from coopfed.node.admin import socket_path
from coopfed.node.background import Background
from coopfed.node.policy.reload import PolicyReloader
from coopfed.node.runtime import init_node, open_node
from coopfed.node.server import NodeServer
from coopfed.node.settings import load_settings

from .conftest import POLICIES, QUIET


def test_a_failing_task_is_logged_and_reported_and_the_others_go_on(caplog: pytest.LogCaptureFixture) -> None:
    reported: list[str] = []
    ticks = 0
    finished: list[str] = []

    async def broken() -> None:
        await asyncio.sleep(0)
        raise OSError("disk full")

    async def steady() -> None:
        nonlocal ticks
        try:
            while True:
                ticks += 1
                await asyncio.sleep(0.01)
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits is awaited by stop
            finished.append("steady")

    async def main() -> None:
        background = Background(reported.append)
        await background.start()
        failing = background.spawn("broken", broken())
        running = background.spawn("steady", steady())
        await asyncio.sleep(0.1)
        assert failing.done()
        assert not running.done()
        await background.stop()
        assert running.done()
        assert finished == ["steady"]
        assert isinstance(background.failures["broken"], OSError)

    with caplog.at_level(logging.ERROR, logger="coopfed.node.background"):
        asyncio.run(main())
    assert reported == ["broken"]
    assert ticks > 2
    [record] = caplog.records
    assert "broken" in record.getMessage()
    assert record.exc_info is not None


def test_spawn_before_start_is_refused() -> None:
    async def work() -> None:
        return None

    with pytest.raises(RuntimeError, match="before start"):
        Background().spawn("early", work())


@pytest.mark.integration
def test_a_node_owns_its_background_work_and_stops_all_of_it(tmp_path: Path) -> None:
    config = init_node(tmp_path / "n", node_id="coop-a", name="A", listen="127.0.0.1:0", policies=POLICIES)
    settings = load_settings(config, environ={**QUIET, "COOPFED_OPEN_DATA__EVERY": "monthly"})

    async def main() -> None:
        with open_node(settings) as node:
            server = NodeServer(node)
            await server.start()
            tasks = dict(server.background.tasks)
            assert set(tasks) == {"admin socket", "open data schedule"}
            assert server.publisher is tasks["open data schedule"]
            assert socket_path(settings.base_dir).exists()
            await asyncio.sleep(0.2)
            assert not any(task.done() for task in tasks.values())
            await server.stop(0)
            assert all(task.done() for task in tasks.values())
            assert not socket_path(settings.base_dir).exists()  # removed by its task as it stopped
            assert server.background.failures == {}

    asyncio.run(main())


def test_a_policy_reload_worker_that_dies_is_raised_by_its_task_not_lost(tmp_path: Path) -> None:
    # the bundle's folder is gone, so the watch cannot start: its thread ends at once
    reloader = PolicyReloader(None, tmp_path / "gone" / "bundle.tar.gz", None, None, tmp_path)  # type: ignore[arg-type]

    async def main() -> None:
        with pytest.raises(FileNotFoundError):
            await asyncio.wait_for(reloader.run(), 30)
        assert reloader._threads == []  # both threads stopped and joined

    asyncio.run(main())
