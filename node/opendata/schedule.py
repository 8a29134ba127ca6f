"""Scheduled open-data publications: the running node publishes once a week or once a month.

A publication is due when none has been made yet in the current local calendar week (Monday
first) or month; the store remembers the last one, whether the schedule or the CLI made it, so
a restart neither skips nor repeats one. Each goes in its own folder under `[open_data] out`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import arrow

from coopfed.node.errors import CoopfedError, InvalidArgument
from coopfed.node.opendata.publish import Publication
from coopfed.node.settings import Settings
from coopfed.node.storage import Store

log = logging.getLogger(__name__)
PERIODS: dict[str, Literal["week", "month"]] = {"weekly": "week", "monthly": "month"}
CHECK_EVERY_S = 600.0


class Schedule:
    def __init__(self, *, settings: Settings, store: Store, publish: Callable[[Path], Publication]) -> None:
        """`publish` writes a package into the folder it is given."""
        every = settings.open_data.every
        if every and every not in PERIODS:
            raise InvalidArgument(
                f'[open_data] every: "weekly", "monthly" or "" (never), not {every!r}',
                code="config.open_data",
            )
        self.settings, self.store, self.publish = settings, store, publish
        self.frame = PERIODS.get(every)

    def due(self, now: int | None = None) -> bool:
        """Whether no publication has been made yet in this week or month (local time)."""
        if self.frame is None:
            return False
        last = self.store.last_publication()
        if last is None:
            return True
        return arrow.get(last).to(self.settings.place.tz) < self._local(now).floor(self.frame)

    def run_once(self, now: int | None = None) -> Publication | None:
        """Publish if due; the publication made, or None."""
        if not self.due(now):
            return None
        folder = self._local(now).format("YYYY-MM-DD_HHmm")
        return self.publish(self.settings.path(self.settings.open_data.out) / folder)

    def _local(self, now: int | None) -> arrow.Arrow:
        return arrow.get(time.time() if now is None else now).to(self.settings.place.tz)

    async def run(self, check_every_s: float = CHECK_EVERY_S) -> None:
        """Until cancelled: publish whenever due. A refusal (no readings yet, a spent budget) is
        logged and tried again later; it never stops the node."""
        while True:
            try:
                made = await asyncio.to_thread(self.run_once)
                if made is not None:
                    log.info("published open data %s in %s", made.publication_id, made.folder)
            except CoopfedError as e:
                log.warning("open data not published: %s", e.message)
            except Exception:  # a store or disk error: the node serves on, and tries again later
                log.exception("open data not published")
            await asyncio.sleep(check_every_s)
