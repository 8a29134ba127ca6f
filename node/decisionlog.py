"""The decision log: OPA-shaped decision events, masked, hash-chained and verifiable."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from coopfed.federation.canonical import canonical_json, legacy_json
from coopfed.node.masking import Masker

GENESIS = "0" * 64
"""The `prev_hash` of the first entry."""

CHAIN_FIELDS = ("seq", "prev_hash", "hash")
_REQUIRED = ("decision_id", "path", "input", "result", "timestamp", *CHAIN_FIELDS)


def entry_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 of the entry without its own `hash` (its `seq` and `prev_hash` are covered)."""
    return _digest(entry, canonical_json)


def _digest(entry: Mapping[str, Any], form: Callable[[Any], bytes]) -> str:
    return hashlib.sha256(form({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def _hashed_form(entry: Mapping[str, Any]) -> Callable[[Any], bytes]:
    """The form the entry's hash is over: RFC 8785, or for an entry written before it (differing
    only where a float is), the legacy sorted-keys form; a chain stored then still verifies."""
    if entry.get("hash") != entry_hash(entry) and entry.get("hash") == _digest(entry, legacy_json):
        return legacy_json
    return canonical_json


def link(entries: Iterable[dict[str, Any]], head_seq: int, head_hash: str) -> list[dict[str, Any]]:
    """Chain new entries onto the head (`seq`, `hash` of the last entry; 0 and GENESIS if none)."""
    chained = []
    for entry in entries:
        head_seq += 1
        entry = {**entry, "seq": head_seq, "prev_hash": head_hash}
        head_hash = entry["hash"] = entry_hash(entry)
        chained.append(entry)
    return chained


# --- masking, as OPA's decision-log mask policy does -------------------------------------


Sink = Callable[[list[dict[str, Any]]], object]
"""Appends events to durable storage in one transaction, chaining them onto the log (what it
returns, the entries as stored, is not used here)."""


@dataclass
class DecisionLog:
    """Builds decision events and hands them to storage.

    Every entry behind an effect someone can see (a grant issued or refused, data released, a
    review, a consent receipt) is committed before the effect leaves the node, so a SIGKILL at
    any moment loses none of them. `event()` makes a masked, unchained event for the caller to
    append together with the state change it explains (one transaction). `commit()` logs a
    decision with no state change of its own, durably, now (a peer's grant). `record()` is
    the one place entries wait in memory: consent decisions per profile, which nothing shows
    until a release, request decision, model or receipt built on them is appended or
    flushed (each of those takes the waiting entries with it), so that evaluating a new consent
    profile costs no disk write. They are also appended when `flush_at` are waiting, or on
    `flush()` (as OPA's decision-log plugin buffers).
    """

    masker: Masker
    labels: dict[str, str]
    sink: Sink
    flush_at: int = 256
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    logged: Callable[[list[dict[str, Any]]], None] = field(default=lambda events: None)  # after each append
    _pending: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def event(self, path: str, input: Any, result: Any, revision: str) -> dict[str, Any]:
        event = {
            "decision_id": str(uuid.uuid4()),
            "path": path,
            "input": input,
            "result": result,
            "revision": revision,
            "bundles": {"coopfed": {"revision": revision}},
            "labels": dict(self.labels),
            "timestamp": self.clock().astimezone(UTC).isoformat(timespec="microseconds"),
        }
        return self.masker.apply(event)

    def record(self, path: str, input: Any, result: Any, revision: str) -> str:
        """Log a decision that changes no state; returns its decision_id."""
        event = self.event(path, input, result, revision)
        with self._lock:
            self._pending.append(event)
            full = len(self._pending) >= self.flush_at
        if full:
            self.flush()
        return event["decision_id"]

    def commit(self, path: str, input: Any, result: Any, revision: str) -> str:
        """Log a decision durably now (with any waiting ones), before its effect is shown."""
        event = self.event(path, input, result, revision)
        self.append(event)
        return event["decision_id"]

    @contextmanager
    def batch(self, *events: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """The waiting events plus `events`, for one durable append; put back if it fails."""
        with self._lock:
            waiting, self._pending = self._pending, []
        batch = [*waiting, *events]
        try:
            yield batch
        except BaseException:
            with self._lock:
                self._pending[:0] = waiting
            raise
        self.logged(batch)

    def append(self, *events: dict[str, Any]) -> None:
        """Append events (and any waiting ones) now."""
        with self.batch(*events) as batch:
            if batch:
                self.sink(batch)

    def flush(self) -> None:
        self.append()


# --- verifying ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """Something wrong with the log: `kind` is edited, deleted, reordered, duplicated,
    malformed, truncated, forged (not written by the node) or unsigned (a head without a valid
    signature of the node); `position` counts stored entries from 1."""

    kind: str
    position: int
    seq: int | None
    decision_id: str
    message: str


@dataclass(frozen=True)
class Report:
    entries: int
    head_seq: int
    head_hash: str
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Seen:
    position: int
    seq: int | None
    decision_id: str
    stored_hash: str
    prev_hash: str
    intact: bool


def _parse(position: int, raw: str | Mapping[str, Any]) -> tuple[_Seen | None, Problem | None]:
    try:
        entry = json.loads(raw) if isinstance(raw, str | bytes) else dict(raw)
    except (ValueError, TypeError):
        entry = None
    if not isinstance(entry, dict) or any(k not in entry for k in _REQUIRED):
        return None, Problem(
            "malformed", position, None, "", f"entry at position {position} is not a log entry"
        )
    seq = entry["seq"] if type(entry["seq"]) is int else None
    decision_id = str(entry["decision_id"])
    try:
        intact = entry["hash"] == entry_hash(entry) or entry["hash"] == _digest(entry, legacy_json)
    except (TypeError, ValueError):
        intact = False
    return _Seen(position, seq, decision_id, str(entry["hash"]), str(entry["prev_hash"]), intact), None


@dataclass(frozen=True)
class Head:
    """A head recorded outside the log: entry `seq` had hash `hash`, as `source` says."""

    seq: int
    hash: str
    source: str = "the recorded head"


def verify(
    entries: Iterable[str | Mapping[str, Any]],
    *,
    head: tuple[int, str] | None = None,
    heads: Iterable[Head] = (),
    signed: Head | None = None,
) -> Report:
    """Check a log, entries in stored order; say which entries were edited, deleted or reordered.

    `head` is a (seq, hash) pair recorded earlier (e.g. printed by `coopfed audit verify` or
    published) and `heads` are heads held elsewhere (witnesses): without one, cutting entries
    off the end of the log cannot be detected. `signed` is the node's own latest signed head:
    every entry after it was appended by someone other than the node.
    """
    seen: list[_Seen] = []
    problems: list[Problem] = []
    for position, raw in enumerate(entries, start=1):
        item, problem = _parse(position, raw)
        if problem:
            problems.append(problem)
        if item:
            seen.append(item)
    problems += _edits(seen) + _sequence(seen)
    recorded = [Head(*head)] if head is not None else []
    for known in [*recorded, *heads, *([signed] if signed else [])]:
        problems += _against_head(seen, known)
    if signed is not None:
        problems += _after_signed(seen, signed)
    problems.sort(key=lambda p: (p.position, p.kind))
    last = seen[-1] if seen else None
    return Report(
        entries=len(seen),
        head_seq=(last.seq or 0) if last else 0,
        head_hash=last.stored_hash if last else GENESIS,
        problems=tuple(dict.fromkeys(problems)),
    )


def _describe(item: _Seen) -> str:
    return f"entry {item.seq} (decision {item.decision_id}, position {item.position})"


def _edits(seen: list[_Seen]) -> list[Problem]:
    """Content that does not match its hash, or a hash recomputed so the next link breaks."""
    problems = [
        Problem(
            "edited",
            s.position,
            s.seq,
            s.decision_id,
            f"{_describe(s)} was edited: it no longer matches its hash",
        )
        for s in seen
        if not s.intact
    ]
    by_seq = {s.seq: s for s in seen if s.seq is not None}
    for s in seen:
        if s.seq == 1 and s.prev_hash != GENESIS and s.intact:
            problems.append(
                Problem("edited", s.position, 1, s.decision_id, f"{_describe(s)} does not start the chain")
            )
        before = by_seq.get(s.seq - 1) if s.seq else None
        if before and before.intact and s.intact and s.prev_hash != before.stored_hash:
            message = f"{_describe(before)} was rewritten: the next entry does not chain to it"
            problems.append(Problem("edited", before.position, before.seq, before.decision_id, message))
    return problems


def _sequence(seen: list[_Seen]) -> list[Problem]:
    """Gaps (deleted entries), repeats, and entries stored out of order."""
    problems: list[Problem] = []
    seqs = [s.seq for s in seen if s.seq is not None]
    counts: dict[int, int] = {}
    for s in seen:
        if s.seq is None:
            continue
        counts[s.seq] = counts.get(s.seq, 0) + 1
        if counts[s.seq] == 2:
            problems.append(
                Problem("duplicated", s.position, s.seq, s.decision_id, f"{_describe(s)} appears twice")
            )
    top = max(seqs, default=0)
    present = set(seqs)
    for missing in sorted(set(range(1, top + 1)) - present):
        after = next((s for s in seen if s.seq == missing + 1), seen[-1])
        message = f"entry {missing} was deleted (the chain skips from {missing - 1} to {missing + 1})"
        problems.append(Problem("deleted", after.position, missing, "", message))
    running = 0
    for s in seen:
        if s.seq is None:
            continue
        if s.seq < running:
            message = f"{_describe(s)} is out of order: it is stored after entry {running}"
            problems.append(Problem("reordered", s.position, s.seq, s.decision_id, message))
        running = max(running, s.seq)
    return problems


def _against_head(seen: list[_Seen], head: Head) -> list[Problem]:
    if head.seq == 0:  # the head of an empty log: nothing to have been cut
        return []
    match = next((s for s in seen if s.seq == head.seq), None)
    if match is None:
        last = max((s.seq or 0 for s in seen), default=0)
        message = f"entries {last + 1} to {head.seq} were cut off the end of the log"
        message += f" ({head.source} is entry {head.seq})"
        return [Problem("truncated", len(seen), head.seq, "", message)]
    if match.stored_hash != head.hash:
        message = f"{_describe(match)} differs from {head.source}: the log was rewritten"
        return [Problem("edited", match.position, head.seq, match.decision_id, message)]
    return []


def _after_signed(seen: list[_Seen], signed: Head) -> list[Problem]:
    after = [s for s in seen if s.seq is not None and s.seq > signed.seq]
    if not after:
        return []
    message = (
        f"entries {after[0].seq} to {after[-1].seq} come after {signed.source} (entry {signed.seq}): "
        "they were not written by the node"
    )
    return [Problem("forged", after[0].position, after[0].seq, after[0].decision_id, message)]


def export_lines(entries: Iterable[str]) -> Iterator[str]:
    """Stored entries as JSON lines, one per entry, exactly as hashed."""
    for raw in entries:
        entry = json.loads(raw)
        yield _hashed_form(entry)(entry).decode("utf-8") + "\n"
