"""The node's forecast context: its folder, its settings and the wake-ups of nudge streams."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from coopfed.node.forecast.store import ForecastStore, import_folder
from coopfed.node.settings import ForecastSection, Settings
from coopfed.node.storage.forecast import ForecastIndex


class Wake:
    """One stream's wake-up flag, settable from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()

    def set_threadsafe(self) -> None:
        with contextlib.suppress(RuntimeError):  # the stream's loop has closed: nothing to wake
            self.loop.call_soon_threadsafe(self.event.set)

    def clear(self) -> None:
        self.event.clear()

    async def wait(self, timeout: float) -> bool:
        """True when woken, False when `timeout` passed first."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except TimeoutError:
            return False
        return True


class NudgeHub:
    """Wakes every nudge stream when this process makes a forecast.

    A forecast made by another process (the CLI) is found by the streams' own periodic look at
    the index; this only makes in-process forecasts arrive without that delay.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: set[Wake] = set()

    @contextlib.contextmanager
    def listen(self) -> Iterator[Wake]:
        wake = Wake(asyncio.get_running_loop())
        with self._lock:
            self._waiting.add(wake)
        try:
            yield wake
        finally:
            with self._lock:
                self._waiting.discard(wake)

    def notify(self) -> None:
        with self._lock:
            waiting = list(self._waiting)
        for wake in waiting:
            wake.set_threadsafe()

    @property
    def listeners(self) -> int:
        with self._lock:
            return len(self._waiting)


@dataclass
class ForecastContext:
    conf: ForecastSection
    store: ForecastStore
    hub: NudgeHub = field(default_factory=NudgeHub)


def open_forecast(settings: Settings, index: ForecastIndex) -> ForecastContext:
    """The forecast context; an earlier release's forecast files are indexed on first open."""
    folder = settings.path(settings.forecast.dir)
    import_folder(folder, index)
    return ForecastContext(settings.forecast, ForecastStore(folder, index))
