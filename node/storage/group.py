"""Group commit: concurrent callers' writes coalesced into one transaction.

A caller hands its work to `GroupCommit.run` and waits. Whoever finds no transaction under way
leads: it takes every piece of work queued so far and writes them all in one transaction (the
store's `write` function), then wakes the others. Each caller returns only once the transaction
holding its work has committed, with its own result or its own error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

W = TypeVar("W")


@dataclass(eq=False)
class Pending(Generic[W]):
    """One caller's work, and once its group has run, its result or its error."""

    work: W
    result: Any = None
    error: BaseException | None = None
    done: bool = field(default=False)


class GroupCommit(Generic[W]):
    """`write(group)` writes a group in one transaction, setting each member's result or error;
    an exception it raises is every member's error (none of them was stored)."""

    def __init__(self, write: Callable[[Sequence[Pending[W]]], None]) -> None:
        self._write = write
        self._changed = threading.Condition()
        self._queue: list[Pending[W]] = []
        self._busy = False

    def run(self, work: W) -> Any:
        (mine,) = self.run_all([work])
        if mine.error is not None:
            raise mine.error
        return mine.result

    def run_all(self, works: Sequence[W]) -> list[Pending[W]]:
        """Several pieces of work, queued together so that one transaction holds them all; each
        one's result or error is on its Pending."""
        mine = [Pending(work) for work in works]
        if not mine:
            return mine
        with self._changed:
            self._queue += mine
            while self._busy and not mine[0].done:
                self._changed.wait()
            lead = not mine[0].done
            if lead:  # everything queued goes in this transaction
                self._busy = True
                group, self._queue = self._queue, []
        if lead:
            try:
                self._write(group)
            except BaseException as exc:  # noqa: BLE001 - each caller of the group raises it
                for pending in group:
                    if pending.error is None:
                        pending.error = exc
            finally:
                with self._changed:
                    for pending in group:
                        pending.done = True
                    self._busy = False
                    self._changed.notify_all()
        return mine
