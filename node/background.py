"""The node's background work in one asyncio.TaskGroup: nothing runs unowned or fails unseen."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Background:
    """The node's background tasks, in one asyncio.TaskGroup.

    A task that fails is logged with its traceback, kept in `failures` and reported to
    `on_failure` (the node counts it in its metrics), and the node serves on without it: one
    schedule's fault does not take the others or the requests down, and is never lost unseen.
    `stop` cancels every task and waits until each has finished.
    """

    def __init__(self, on_failure: Callable[[str], None] = lambda task: None) -> None:
        self._on_failure = on_failure
        self._stack = contextlib.AsyncExitStack()
        self._group: asyncio.TaskGroup | None = None
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.failures: dict[str, BaseException] = {}

    async def start(self) -> None:
        self._group = await self._stack.enter_async_context(asyncio.TaskGroup())

    def spawn(self, name: str, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `work` until it returns, fails or is stopped."""
        if self._group is None:
            work.close()
            raise RuntimeError("Background.spawn before start")
        task = self.tasks[name] = self._group.create_task(self._guarded(name, work), name=name)
        task.add_done_callback(lambda _: work.close())  # stopped before it began: never left unawaited
        return task

    async def _guarded(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception as exc:  # kept and logged: the TaskGroup would otherwise stop every task
            self.failures[name] = exc
            log.exception("background task %s failed and has stopped; the node serves on", name)
            self._on_failure(name)

    async def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await self._stack.aclose()  # the TaskGroup awaits every task
        self._stack, self._group, self.tasks = contextlib.AsyncExitStack(), None, {}
