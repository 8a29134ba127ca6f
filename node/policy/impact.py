"""Impact analysis: replay a decision log through two policy revisions and report what changes.

Entries are read from any iterable of decision-log entries (JSON text or mappings with
decision_id, path, input, result, revision), such as `GovernanceStore.decision_log()` or a
JSON-lines export. Entries whose path is no entrypoint of either revision (board reviews,
grants, revocations) are counted and skipped. Equal (path, input) pairs are evaluated once.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from coopfed.node.policy.loader import legacy_revision
from coopfed.node.policy.replay import Answer, Replayer

CHUNK = 2_000  # entries read before their new inputs are evaluated, as one batch per path


@dataclass(frozen=True)
class LogEntry:
    decision_id: str
    path: str
    input: Any
    result: Any
    revision: str
    timestamp: str = ""
    masked: tuple[str, ...] = ()  # pointers erased, digested or pseudonymised when it was logged


def parse_entries(raw: Iterable[str | bytes | Mapping[str, Any]], bad: Counter[str]) -> Iterator[LogEntry]:
    """Decision-log entries from JSON text or mappings; malformed ones are counted in `bad`."""
    for item in raw:
        try:
            entry = json.loads(item) if isinstance(item, str | bytes) else dict(item)
        except (ValueError, TypeError):
            bad["not JSON"] += 1
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or "input" not in entry:
            bad["not a decision-log entry"] += 1
            continue
        yield LogEntry(
            decision_id=str(entry.get("decision_id", "")),
            path=entry["path"],
            input=entry["input"],
            result=entry.get("result"),
            revision=str(entry.get("revision", "")),
            timestamp=str(entry.get("timestamp", "")),
            masked=_pointers(entry.get("erased")) + _pointers(entry.get("masked")),
        )


def _pointers(value: Any) -> tuple[str, ...]:
    return tuple(str(p) for p in value) if isinstance(value, list) else ()


def outcome_of(answer: Answer) -> str:
    """A short label for a decision: its outcome, allowed/refused, aligned/not aligned, ..."""
    ok, value = answer
    if not ok:
        return "error"
    if value is None:
        return "undefined"
    if isinstance(value, dict):
        if isinstance(value.get("outcome"), str):
            return value["outcome"]
        for key, yes, no in (("allowed", "allowed", "refused"), ("aligned", "aligned", "not aligned")):
            if isinstance(value.get(key), bool):
                return yes if value[key] else no
        if isinstance(value.get("score"), int | float):
            return f"score {value['score']}"
    return "value"


def summary_of(answer: Answer) -> dict[str, Any]:
    """Outcome, score and reasons of a decision, for a report example."""
    ok, value = answer
    out: dict[str, Any] = {"outcome": outcome_of(answer)}
    if not ok:
        out["error"] = value
    elif isinstance(value, dict):
        if "score" in value:
            out["score"] = value["score"]
        if isinstance(value.get("reasons"), list):
            out["reasons"] = value["reasons"]
    return out


@dataclass
class PathImpact:
    replayed: int = 0
    changed: int = 0  # result differs in any way
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (before, after) -> entries
    before: Counter[str] = field(default_factory=Counter)  # outcome -> entries, under base
    after: Counter[str] = field(default_factory=Counter)  # outcome -> entries, under head
    parts: Counter[str] = field(default_factory=Counter)  # top-level result member -> entries it changed in


@dataclass
class ImpactReport:
    """Everything `coopfed policy diff` prints, as Markdown or JSON."""

    base: str
    head: str
    base_revision: str
    head_revision: str
    engine: str
    entries: int = 0
    replayed: int = 0
    distinct_inputs: int = 0
    changed: int = 0
    masked: int = 0
    errors: int = 0
    paths: dict[str, PathImpact] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)
    logged_under_base: int = 0
    reproduced: int = 0  # of those, how many the base replay answered exactly as logged
    examples: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        from coopfed.node.policy.report import report_json

        return report_json(self)

    def to_markdown(self) -> str:
        from coopfed.node.policy.report import report_markdown

        return report_markdown(self)


@dataclass
class _Verdict:
    base: Answer
    head: Answer

    def __post_init__(self) -> None:
        self.changed = self.base != self.head
        self.labels = (outcome_of(self.base), outcome_of(self.head))
        self.parts = _changed_parts(self.base, self.head) if self.changed else ()


def _changed_parts(base: Answer, head: Answer) -> tuple[str, ...]:
    """The top-level members of the decision that differ (the whole value where not both objects)."""
    if not (base[0] and head[0] and isinstance(base[1], dict) and isinstance(head[1], dict)):
        return ("(whole decision)",)
    keys = base[1].keys() | head[1].keys()
    return tuple(sorted(k for k in keys if base[1].get(k) != head[1].get(k)))


def _encode(path: str, value: Any) -> tuple[bytes, bytes | None]:
    """The entry's cache key, and its input as canonical JSON text that both revisions' engines
    read as it is (None where it is not JSON: the engines refuse it, in their own words)."""
    try:
        # Not RFC 8785: this key lives in memory for one run, and the C encoder keeps 100,000
        # entries fast (bench/policy_diff.py); nothing stored or signed is hashed here.
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        data = text.encode("utf-8")
    except (TypeError, ValueError):
        text = json.dumps([path, value], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest(), None
    return hashlib.sha256(path.encode("utf-8") + b"\0" + data).digest(), data


@dataclass
class _Chunk:
    entries: list[LogEntry]
    keys: list[bytes | None]
    jobs: list[tuple[list[bytes], Future[list[Answer]], Future[list[Answer]]]]


class ImpactAnalysis:
    """Replays entries through `base` and `head` (both evaluated at once, in two threads)."""

    def __init__(
        self,
        base: Replayer,
        head: Replayer,
        report: ImpactReport,
        *,
        examples_per_change: int = 3,
        max_examples: int = 20,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.base, self.head, self.report = base, head, report
        self.replayable = set(base.policies.entrypoints) | set(head.policies.entrypoints)
        # entries logged before policy revisions were RFC 8785 hashes name the base by its old id
        self._base_ids = {base.policies.revision, legacy_revision(base.policies)}
        self._submitted: set[bytes] = set()  # keys of inputs sent to the engines
        self._cache: dict[bytes, _Verdict] = {}
        self._per_change, self._max_examples = examples_per_change, max_examples
        self._progress = progress

    def run(self, entries: Iterable[LogEntry]) -> ImpactReport:
        started = time.perf_counter()
        iterator = iter(entries)
        with ThreadPoolExecutor(max_workers=2) as pool:
            # While the engines evaluate one chunk, this thread tallies the one before.
            pending: _Chunk | None = None
            try:
                while chunk := list(itertools.islice(iterator, CHUNK)):
                    submitted = self._submit(chunk, pool)
                    if pending:
                        self._finish(pending)
                        # The verdicts kept for the whole run are millions of objects that every
                        # full collection scanned again, a cost growing with the square of the log.
                        gc.freeze()
                    pending = submitted
                if pending:
                    self._finish(pending)
            finally:
                gc.unfreeze()
        self.report.distinct_inputs = len(self._submitted)
        self.report.seconds = time.perf_counter() - started
        return self.report

    def _submit(self, chunk: list[LogEntry], pool: ThreadPoolExecutor) -> _Chunk:
        """The chunk with each entry's cache key (None where not replayed), and its new
        inputs submitted to both revisions, one batch per path."""
        keys: list[bytes | None] = []
        todo: dict[str, dict[bytes, tuple[Any, bytes | None]]] = {}
        for entry in chunk:
            if entry.path not in self.replayable:
                keys.append(None)
                continue
            key, text = _encode(entry.path, entry.input)
            keys.append(key)
            if key not in self._submitted:
                self._submitted.add(key)
                todo.setdefault(entry.path, {})[key] = (entry.input, text)
        jobs = []
        for path, batch in todo.items():
            inputs = [value for value, _ in batch.values()]
            texts = [text for _, text in batch.values()]
            encoded = None if None in texts else cast(list[bytes], texts)
            before = pool.submit(self.base.evaluate_many, path, inputs, encoded)
            jobs.append((list(batch), before, pool.submit(self.head.evaluate_many, path, inputs, encoded)))
        return _Chunk(chunk, keys, jobs)

    def _finish(self, done: _Chunk) -> None:
        for batch, before, after in done.jobs:
            for key, b, h in zip(batch, before.result(), after.result(), strict=True):
                self._cache[key] = _Verdict(b, h)
        for entry, entry_key in zip(done.entries, done.keys, strict=True):
            self._tally(entry, entry_key)
        if self._progress:
            self._progress(len(done.entries))

    def _tally(self, entry: LogEntry, key: bytes | None) -> None:
        report = self.report
        report.entries += 1
        if key is None:
            report.skipped[entry.path] += 1
            return
        verdict = self._cache[key]
        report.replayed += 1
        report.masked += bool(entry.masked)
        report.errors += (not verdict.base[0]) or (not verdict.head[0])
        if entry.revision in self._base_ids:
            report.logged_under_base += 1
            report.reproduced += verdict.base == (True, entry.result)
        impact = report.paths.setdefault(entry.path, PathImpact())
        impact.replayed += 1
        change = verdict.labels
        impact.before[change[0]] += 1
        impact.after[change[1]] += 1
        if not verdict.changed:
            return
        report.changed += 1
        impact.changed += 1
        impact.transitions[change] += 1
        impact.parts.update(verdict.parts)
        if impact.transitions[change] <= self._per_change and len(report.examples) < self._max_examples:
            report.examples.append(
                {
                    "decision_id": entry.decision_id,
                    "path": entry.path,
                    "logged_revision": entry.revision,
                    "timestamp": entry.timestamp,
                    "input": entry.input,
                    "logged": summary_of((True, entry.result)),  # what the node decided at the time
                    "base": summary_of(verdict.base),
                    "head": summary_of(verdict.head),
                }
            )
