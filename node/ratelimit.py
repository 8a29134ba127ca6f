"""Token buckets per caller (an address, or a credential's subject), in memory: a burst, then a
steady rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from coopfed.node.errors import ResourceExhausted

_MAX_CALLERS = 10_000  # addresses remembered; a full bucket is forgotten first


class RateLimit:
    """`burst` calls at once per caller, refilled at `per_hour` an hour; `whose` names the
    caller in the refusal ("your address", "your organisation")."""

    def __init__(
        self,
        what: str,
        burst: int,
        per_hour: float,
        clock: Callable[[], float] = time.monotonic,
        whose: str = "your address",
    ) -> None:
        self.what, self.burst, self.rate, self.whose = what, burst, per_hour / 3600, whose
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, caller: str) -> None:
        """Spend one token of the caller's bucket, or refuse with RESOURCE_EXHAUSTED."""
        now = self._clock()
        with self._lock:
            tokens, when = self._buckets.get(caller, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - when) * self.rate)
            if tokens < 1:
                wait = (1 - tokens) / self.rate if self.rate else float("inf")
                raise ResourceExhausted(
                    f"too many {self.what} from {self.whose}; try again in {_minutes(wait)}",
                    code="rate.limited",
                )
            self._buckets[caller] = (tokens - 1, now)
            if len(self._buckets) > _MAX_CALLERS:
                self._forget(now)

    def _forget(self, now: float) -> None:
        full = [c for c, (t, w) in self._buckets.items() if t + (now - w) * self.rate >= self.burst]
        for caller in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[caller]


def _minutes(seconds: float) -> str:
    if seconds == float("inf"):
        return "a while"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def peer_address(peer: str) -> str:
    """The caller's address without its port, from gRPC's `ipv4:1.2.3.4:5678` or `ipv6:[::1]:5678`."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        return rest.rsplit(":", 1)[0]
    return peer
