"""Hot reload of signed bundles: verify, compile, swap; refuse anything else and say why.

A reload is asked for by a change to the bundle file (a watch thread, through one worker
thread: `run`, a serving node's background task) or by the admin service's ReloadPolicy
(`coopfed policy reload`, over the node's admin socket). Either way the bundle is verified
against the board keys, checked to be newer than the last one the node accepted (ordering.py),
compiled into a new engine and swapped into the PolicyHolder; on any failure the old revision
stays. Outcomes are kept in `outcomes`; the
admin service's Status reports the latest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import watchfiles

from coopfed.federation.keys import read_private
from coopfed.node.policy.boardkeys import BoardKeySet
from coopfed.node.policy.bundle import DEFAULT_SCOPE, BundleError, VerifiedBundle, verify_bundle
from coopfed.node.policy.engine import PolicyEngine, make_engine
from coopfed.node.policy.errors import PolicyEngineError
from coopfed.node.policy.holder import PolicyHolder
from coopfed.node.policy.loader import PolicySet, load_policies
from coopfed.node.policy.ordering import Floor, check_order, load_floor, raised, save_floor
from coopfed.node.storage.base import StorageError

log = logging.getLogger(__name__)
EngineFactory = Callable[[PolicySet], PolicyEngine]


class DataGate(Protocol):
    """A check of a bundle's data beyond its signatures (the members' ballots: ballots/gate.py)."""

    def check(self, verified: VerifiedBundle) -> None:
        """Raise BundleError where the bundle may not run."""

    def accepted(self, verified: VerifiedBundle) -> None:
        """The bundle is about to run: record what it applied."""


@dataclass(frozen=True)
class BundleTrust:
    """What a node requires of a bundle: the board's keys, how many must sign, the scope, and
    the gate its data must pass."""

    keys: BoardKeySet
    threshold: int = 1
    scope: str = DEFAULT_SCOPE
    rollback_threshold: int = 0  # signatures a rollback bundle needs; 0: every board key
    gate: DataGate | None = None

    def verify(self, path: Path) -> VerifiedBundle:
        return verify_bundle(path, self.keys, threshold=self.threshold, scope=self.scope)

    def admit(self, verified: VerifiedBundle, folder: Path) -> Floor:
        """Check a verified bundle may follow the last one this node accepted (the floor kept in
        `folder`); returns the floor to save once it runs."""
        floor = load_floor(folder)
        check_order(floor, verified.info, max(self.rollback_threshold or len(self.keys), self.threshold))
        if self.gate is not None:
            self.gate.check(verified)
        return raised(floor, verified.info)

    def accepted(self, verified: VerifiedBundle, folder: Path, floor: Floor) -> None:
        """Record, durably and before the bundle runs, that this node accepted it."""
        save_floor(folder, floor)
        if self.gate is not None:
            self.gate.accepted(verified)


@dataclass(frozen=True)
class ReloadOutcome:
    """One reload attempt: whether the node now runs `revision`, and if not, why."""

    attempt: int
    ok: bool
    revision: str  # the revision the node runs after this attempt
    offered: str = ""  # the revision the bundle carried, when it could be read
    reason: str = ""
    signers: tuple[str, ...] = ()
    request: str = ""  # who asked: "admin" for the admin service, "" for a change to the bundle
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


class PolicyReloader:
    """Serialises reloads of one bundle into one holder; start() runs the worker and the watch."""

    def __init__(
        self,
        holder: PolicyHolder,
        bundle: Path,
        trust: BundleTrust,
        factory: EngineFactory,
        state_dir: Path,
        *,
        watch_bundle: bool = True,
    ) -> None:
        self.holder, self.bundle, self.trust, self.factory = holder, bundle, trust, factory
        self.folder = state_dir  # where the floor of accepted bundles is kept
        self.watch_bundle = watch_bundle
        self._changed = threading.Condition()
        self._pending: str | None = None  # who asked, for a waiting request
        self._stop = threading.Event()
        self._serial = threading.Lock()  # one reload at a time, whoever asks
        self._threads: list[threading.Thread] = []
        self.outcomes: list[ReloadOutcome] = []

    # --- asking for a reload ---------------------------------------------------------------

    def request(self, nonce: str = "") -> None:
        """Ask the worker to reload (thread-safe, returns at once)."""
        with self._changed:
            self._pending = nonce or self._pending or ""
            self._changed.notify_all()

    def wait_for(self, attempts: int, timeout: float = 30.0) -> ReloadOutcome:
        """Block until at least `attempts` reloads were attempted; the latest outcome."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.outcomes) >= attempts, timeout):
                raise TimeoutError(f"no reload attempt {attempts} within {timeout} s")
            return self.outcomes[-1]

    # --- doing it ---------------------------------------------------------------------------

    def reload(self, request: str = "") -> ReloadOutcome:
        """Verify and compile the bundle, then swap; on failure keep the running revision."""
        with self._serial:
            return self._reload(request)

    def _reload(self, request: str) -> ReloadOutcome:
        current = self.holder.revision
        offered = ""
        signers: tuple[str, ...] = ()
        try:
            verified = self.trust.verify(self.bundle)
            offered, signers = verified.info.revision, verified.info.signers
            floor = self.trust.admit(verified, self.folder)
            engine = self.factory(verified.policies) if offered != current else None  # compiles
            try:
                self.trust.accepted(verified, self.folder, floor)  # durable before the bundle runs
            except (OSError, StorageError) as exc:
                if engine is not None:
                    engine.close()
                raise BundleError(f"cannot record the accepted bundle: {exc}") from exc
            if engine is not None:
                self.holder.swap(engine, verified.policies, source=str(self.bundle))
            outcome = self._outcome(True, offered, offered, "", signers, request)
            log.info("policy revision %s loaded from %s", offered, self.bundle)
        except PolicyEngineError as exc:  # BundleError is one; PolicyUnavailable too
            outcome = self._outcome(False, current, offered, str(exc), signers, request)
            log.warning("policy bundle %s refused, keeping revision %s: %s", self.bundle, current, exc)
        self._record(outcome)
        return outcome

    def _outcome(
        self, ok: bool, revision: str, offered: str, reason: str, signers: tuple[str, ...], request: str
    ) -> ReloadOutcome:
        return ReloadOutcome(len(self.outcomes) + 1, ok, revision, offered, reason, signers, request)

    def _record(self, outcome: ReloadOutcome) -> None:
        with self._changed:
            self.outcomes.append(outcome)
            self._changed.notify_all()

    # --- the worker and the watch ------------------------------------------------------------

    async def run(self) -> None:
        """The worker and the watch threads, until cancelled; raises what ends either of them, so
        that the task running this (the node's Background) reports it instead of losing it."""
        if not self.watch_bundle:
            return  # reloads come from the admin service only, each on its caller's thread
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()

        def report(exc: BaseException) -> None:
            if not ended.done():
                ended.set_exception(exc)

        def guarded(target: Callable[[], None]) -> Callable[[], None]:
            def body() -> None:
                try:
                    target()
                    if not self._stop.is_set():
                        raise RuntimeError(f"the policy {target.__name__.strip('_')} thread ended")
                except Exception as exc:  # noqa: BLE001 - handed to the task that reports it
                    loop.call_soon_threadsafe(report, exc)

            return body

        self._stop.clear()
        self._threads = [
            threading.Thread(target=guarded(self._work), name="policy-reload", daemon=True),
            threading.Thread(target=guarded(self._watch), name="policy-watch", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        try:
            await ended
        finally:
            await asyncio.to_thread(self.stop)

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(10)
        self._threads = []

    def _work(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending is not None or self._stop.is_set())
                if self._stop.is_set():
                    return
                nonce, self._pending = self._pending or "", None
            self.reload(nonce)

    def _watch(self) -> None:
        for changes in watchfiles.watch(
            self.bundle.parent.resolve(),
            stop_event=self._stop,
            debounce=200,
            step=20,
            rust_timeout=500,
            yield_on_timeout=False,
        ):
            if self.bundle.resolve() in {Path(p) for _, p in changes} and self.bundle.exists():
                self.request()


@contextlib.contextmanager
def open_policy(
    *,
    kind: str,
    policy_dir: Path,
    bundle: Path | None,
    board_keys: Sequence[Path],
    threshold: int,
    scope: str,
    state_dir: Path,
    rollback_threshold: int = 0,
    gate: DataGate | None = None,
    watch: bool = True,
    opa_url: str = "",
    opa_binary: str = "",
    opa_token_file: Path | None = None,
    opa_ca_file: Path | None = None,
) -> Iterator[PolicyHolder]:
    """The node's policy holder: from a signed bundle when one is configured (then reloadable),
    else from a policy directory (development). Fails closed: a bundle without board keys, one
    that does not verify, or one older than the last bundle this node accepted stops the node
    from starting."""

    token = read_private(opa_token_file).decode("utf-8").strip() if opa_token_file else ""
    ca = str(opa_ca_file) if opa_ca_file else ""

    def factory(policies: PolicySet) -> PolicyEngine:
        return make_engine(
            kind, policies, opa_url=opa_url, opa_binary=opa_binary, opa_token=token, opa_ca_file=ca
        )

    if bundle is None:
        policies = load_policies(policy_dir)
        holder = PolicyHolder(factory(policies), policies, source=str(policy_dir))
        try:
            yield holder
        finally:
            holder.close()
        return
    if not board_keys:
        raise BundleError("[policy] bundle is set but no board_keys are configured to verify it")
    trust = BundleTrust(BoardKeySet.load(board_keys), threshold, scope, rollback_threshold, gate)
    verified = trust.verify(bundle)
    floor = trust.admit(verified, state_dir)
    engine = factory(verified.policies)
    try:
        trust.accepted(verified, state_dir, floor)
    except (OSError, StorageError) as exc:
        engine.close()
        raise BundleError(f"cannot record the accepted bundle in {state_dir}: {exc}") from exc
    holder = PolicyHolder(engine, verified.policies, source=str(bundle))
    reloader = PolicyReloader(holder, bundle, trust, factory, state_dir, watch_bundle=watch)
    holder.reloader = reloader  # its worker and watch run while the node serves (NodeServer)
    try:
        yield holder
    finally:
        holder.close()
