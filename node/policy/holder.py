"""The node's current policy engine, swapped atomically on reload; each request finishes on its own."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from coopfed.node.policy.engine import PolicyEngine
from coopfed.node.policy.errors import PolicyError
from coopfed.node.policy.loader import PolicySet


@dataclass(eq=False)
class _Slot:
    """One compiled revision, how many evaluations or requests use it, and whether it was replaced."""

    engine: PolicyEngine
    policies: PolicySet
    source: str
    users: int = 0
    retired: bool = False


class PolicyHolder:
    """Implements PolicyEngine by delegating to the current engine, which `swap` replaces.

    Inside `pinned()` (every gRPC request is pinned by node/rpc.py's PolicyPinInterceptor) `revision`,
    `evaluate`, `policies` and `data` all answer from the engine current when the pin was
    taken, so a request that started on one revision finishes on it and logs that revision.
    Outside a pin, each call uses the engine current at that moment. A replaced engine is
    closed when the last request or evaluation using it ends.
    """

    def __init__(self, engine: PolicyEngine, policies: PolicySet, *, source: str = "") -> None:
        if engine.revision != policies.revision:
            raise PolicyError("the engine does not hold the policy set it is given with")
        self._lock = threading.Lock()
        self._slot: _Slot | None = _Slot(engine, policies, source)
        self.reloader: Any = None  # the PolicyReloader, where policies come from a signed bundle
        self._pin: contextvars.ContextVar[_Slot | None] = contextvars.ContextVar(
            f"coopfed_policy_pin_{id(self)}", default=None
        )

    # --- the PolicyEngine interface ---------------------------------------------------------

    @property
    def revision(self) -> str:
        return self._view().policies.revision

    def evaluate(self, path: str, input: Any) -> Any:
        with self.pinned() as engine:
            return engine.evaluate(path, input)

    def evaluate_many(self, path: str, inputs: Sequence[Any]) -> list[Any]:
        with self.pinned() as engine:
            return engine.evaluate_many(path, inputs)

    def close(self) -> None:
        with self._lock:
            slot, self._slot = self._slot, None
            if slot is None:
                return
            slot.retired = True
            idle = slot.users == 0
        if idle:
            slot.engine.close()

    # --- what the node reads besides decisions ----------------------------------------------

    @property
    def policies(self) -> PolicySet:
        return self._view().policies

    @property
    def data(self) -> dict[str, Any]:
        """The policy data (personas, purposes, weights) of the pinned or current revision."""
        return self._view().policies.data

    @property
    def personas(self) -> dict[str, Any]:
        """The co-op's consent personas (name -> title, description, flows) in that revision."""
        return self.data["consent"]["personas"]

    @property
    def source(self) -> str:
        """Where the current revision came from (a bundle path, a directory)."""
        return self._view().source

    def decide(self, path: str, input: Any) -> tuple[Any, str]:
        """Evaluate and name the revision that answered, as one step."""
        with self.pinned() as engine:
            return engine.evaluate(path, input), engine.revision

    @contextlib.contextmanager
    def pinned(self) -> Iterator[PolicyEngine]:
        """Use one engine for everything inside the block, even if a reload swaps it meanwhile."""
        held = self._pin.get()
        if held is not None:
            yield held.engine
            return
        slot = self._acquire()
        token = self._pin.set(slot)
        try:
            yield slot.engine
        finally:
            self._release(slot)
            # closed by asyncio's finaliser in another context (an abandoned stream): nothing to reset
            with contextlib.suppress(ValueError):
                self._pin.reset(token)

    def swap(self, engine: PolicyEngine, policies: PolicySet, *, source: str = "") -> str:
        """Make `engine` current; returns the revision it replaced. The old one closes when idle."""
        if engine.revision != policies.revision:
            raise PolicyError("the engine does not hold the policy set it is given with")
        with self._lock:
            old = self._slot
            if old is None:
                raise PolicyError("the policy holder is closed")
            self._slot = _Slot(engine, policies, source)
            old.retired = True
            idle = old.users == 0
        if idle:
            old.engine.close()
        return old.policies.revision

    def _view(self) -> _Slot:
        held = self._pin.get()
        if held is not None:
            return held
        with self._lock:
            if self._slot is None:
                raise PolicyError("the policy holder is closed")
            return self._slot

    def _acquire(self) -> _Slot:
        with self._lock:
            if self._slot is None:
                raise PolicyError("the policy holder is closed")
            self._slot.users += 1
            return self._slot

    def _release(self, slot: _Slot) -> None:
        with self._lock:
            slot.users -= 1
            idle = slot.retired and slot.users == 0
        if idle:
            slot.engine.close()
