"""Hot reload of signed bundles: verify, compile, swap; refuse anything else and say why.

A reload is asked for by a change to the bundle file (a watch thread) or by writing a nonce
to the node's control file `policy.reload` (`coopfed policy reload`). Either way one worker
thread verifies the bundle against the board keys, checks it is newer than the last one the
node accepted (ordering.py), compiles it into a new engine and swaps it into the PolicyHolder;
on any failure the old revision stays. The outcome of the latest
attempt is written to `policy-status.json` beside the control file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import watchfiles

from coopfed.federation.keys import read_private, write_public
from coopfed.node.policy.boardkeys import BoardKeySet
from coopfed.node.policy.bundle import DEFAULT_SCOPE, BundleError, VerifiedBundle, verify_bundle
from coopfed.node.policy.engine import PolicyEngine, make_engine
from coopfed.node.policy.errors import PolicyEngineError
from coopfed.node.policy.holder import PolicyHolder
from coopfed.node.policy.loader import PolicySet, load_policies
from coopfed.node.policy.ordering import Floor, check_order, load_floor, raised, save_floor
from coopfed.node.storage.base import StorageError

log = logging.getLogger(__name__)
CONTROL_FILE = "policy.reload"
STATUS_FILE = "policy-status.json"
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
    request: str = ""  # the nonce of the control-file request this attempt served
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


class PolicyReloader:
    """Serialises reloads of one bundle into one holder; start() runs the worker and the watch."""

    def __init__(
        self,
        holder: PolicyHolder,
        bundle: Path,
        trust: BundleTrust,
        factory: EngineFactory,
        control_dir: Path,
        *,
        watch_bundle: bool = True,
    ) -> None:
        self.holder, self.bundle, self.trust, self.factory = holder, bundle, trust, factory
        self.folder = control_dir  # where the floor of accepted bundles is kept
        self.control = control_dir / CONTROL_FILE
        self.status_path = control_dir / STATUS_FILE
        self.watch_bundle = watch_bundle
        self._changed = threading.Condition()
        self._pending: str | None = None  # the nonce of a waiting request ("" for a file change)
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
        offered, signers = "", ()
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
        status = {"running": self.holder.revision, "source": self.holder.source, "last": asdict(outcome)}
        try:
            write_public(self.status_path, json.dumps(status, indent=2).encode("utf-8"))
        except OSError as exc:
            log.warning("cannot write %s: %s", self.status_path, exc)
        with self._changed:
            self.outcomes.append(outcome)
            self._changed.notify_all()

    # --- the worker and the watch ------------------------------------------------------------

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._work, name="policy-reload", daemon=True),
            threading.Thread(target=self._watch, name="policy-watch", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

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
        folders = {self.control.parent.resolve()}
        if self.watch_bundle:
            folders.add(self.bundle.parent.resolve())
        for changes in watchfiles.watch(
            *folders, stop_event=self._stop, debounce=200, step=20, rust_timeout=500, yield_on_timeout=False
        ):
            self._on_changes({Path(p) for _, p in changes})

    def _on_changes(self, paths: set[Path]) -> None:
        if self.control.resolve() in paths and self.control.exists():
            self.request(_read_nonce(self.control) or "control")
        elif self.watch_bundle and self.bundle.resolve() in paths and self.bundle.exists():
            self.request()


def _read_nonce(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()[:64]
    except OSError:
        return ""


def read_status(control_dir: Path) -> dict[str, Any] | None:
    """The node's policy status file, or None where it has not written one."""
    try:
        return json.loads((control_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def open_policy(
    *,
    kind: str,
    policy_dir: Path,
    bundle: Path | None,
    board_keys: Sequence[Path],
    threshold: int,
    scope: str,
    control_dir: Path,
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
    floor = trust.admit(verified, control_dir)
    engine = factory(verified.policies)
    try:
        trust.accepted(verified, control_dir, floor)
    except (OSError, StorageError) as exc:
        engine.close()
        raise BundleError(f"cannot record the accepted bundle in {control_dir}: {exc}") from exc
    holder = PolicyHolder(engine, verified.policies, source=str(bundle))
    reloader = PolicyReloader(holder, bundle, trust, factory, control_dir, watch_bundle=watch)
    holder.reloader = reloader
    reloader.start()
    try:
        yield holder
    finally:
        reloader.stop()
        holder.close()
