"""A logged decision in plain words: what was asked, what was decided, why, the scores, the revision."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.markup import escape

from coopfed.node.errors import FailedPrecondition, NotFound
from coopfed.node.policy.impact import LogEntry, outcome_of, parse_entries
from coopfed.node.storage import base as storage
from coopfed.node.storage.ballots import BallotStore
from coopfed.node.storage.governance import GovernanceStore

_DATA_REF = re.compile(r"\bdata((?:\.[A-Za-z_]\w*)+)")

_TITLES = {
    "coopfed/consent/decision": "consent to release a member's data",
    "coopfed/governance/decision": "a third party's data request",
    "coopfed/governance/organisation/assessment": "the assessment of a requesting organisation",
    "coopfed/federation/alignment/decision": "whether a peer co-op is aligned",
    "coopfed/federation/grant/decision": "a peer co-op's grant request",
}


def find_entry(entries: Iterable[LogEntry], decision_id: str) -> LogEntry | None:
    """Scan entries (an exported log has no index); None if the id is not among them."""
    return next((e for e in entries if e.decision_id == decision_id), None)


def lookup_entry(governance: GovernanceStore, decision_id: str) -> LogEntry:
    """One entry of a node's log, by its indexed decision id; NotFound if there is none."""
    try:
        raw = governance.decision_entry(decision_id)
    except storage.NotFound:
        raise not_found(decision_id) from None
    entry = next(parse_entries([raw], Counter()), None)
    if entry is None:
        raise FailedPrecondition(
            f"decision {decision_id} is stored but is not a log entry: run coopfed audit verify",
            code="decision.malformed",
        )
    return entry


def not_found(decision_id: str) -> NotFound:
    return NotFound(f"no decision {decision_id!r} in the decision log", code="decision.not_found")


def data_read_by(path: str, modules: Mapping[str, str]) -> set[str]:
    """The policy data (as JSON pointers) the modules of a decision's package refer to."""
    package = ".".join(path.split("/")[:2])  # coopfed/governance/decision -> coopfed.governance
    refs: set[str] = set()
    for source in modules.values():
        if re.search(rf"^package\s+{re.escape(package)}\b", source, re.MULTILINE):
            refs.update("/" + m.group(1)[1:].replace(".", "/") for m in _DATA_REF.finditer(source))
    return {r for r in refs if not r.startswith("/coopfed")}


def ballots_behind(ballots: BallotStore, entry: LogEntry, modules: Mapping[str, str]) -> list[dict[str, Any]]:
    """The members' ballots that set a rule this decision read: for each governed pointer the
    decision's policy reads, the last ballot applied before the decision that changed it."""
    from coopfed.node.policy.data_changes import patched_pointers

    try:
        made = datetime.fromisoformat(entry.timestamp).timestamp()
    except ValueError:
        return []
    reads = data_read_by(entry.path, modules)
    latest: dict[str, dict[str, Any]] = {}
    for ballot_id, revision, applied in ballots.applications():
        if applied > made:
            continue
        ballot = ballots.get_ballot(ballot_id)
        change = (ballot.tally or {}).get("change") or {}
        for pointer in patched_pointers(change):
            if any(pointer == r or pointer.startswith(r + "/") or r.startswith(pointer + "/") for r in reads):
                latest[pointer] = {
                    "pointer": pointer, "ballot_id": ballot_id, "title": ballot.proposal["title"],
                    "counts": _in_order(ballot.proposal, (ballot.tally or {}).get("counts", {})),
                    "closed_at": ballot.closed_unix,
                    "revision": revision,
                }  # fmt: skip
    return [latest[p] for p in sorted(latest)]


def _in_order(proposal: Mapping[str, Any], counts: Mapping[str, int]) -> dict[str, int]:
    """A tally's counts in the order the ballot offered its choices."""
    return {c["key"]: counts.get(c["key"], 0) for c in proposal.get("choices", [])}


def explain(entry: LogEntry, behind: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """Lines of plain text (rich markup allowed) describing one decision-log entry, with the
    members' ballots behind the rules it read (see ballots_behind)."""
    what = _TITLES.get(entry.path, f"the policy document {entry.path}")
    lines = [
        f"[bold]Decision {escape(entry.decision_id)}[/bold]: {escape(what)} ({escape(entry.path)})",
        f"Made at {entry.timestamp or 'an unrecorded time'} "
        f"by policy revision {entry.revision or 'unknown'}.",
        "",
        f"Result: [bold]{escape(outcome_of((True, entry.result)))}[/bold]{escape(_detail(entry.result))}",
    ]
    reasons = entry.result.get("reasons") if isinstance(entry.result, dict) else None
    if reasons:
        lines += ["", "Why:"] + [f"  - {r}" for r in reasons]
    breakdown = list(_breakdown(entry.result))
    if breakdown:
        lines += ["", "Score breakdown:", *breakdown]
    if behind:
        lines += ["", "Rules the members set by ballot:"]
        for b in behind:
            counts = ", ".join(f"{k} {n}" for k, n in b["counts"].items())
            ballot = f'ballot {escape(b["ballot_id"])} "{escape(b["title"])}"'
            lines.append(f"  - {escape(b['pointer'])}: {ballot} ({counts})")
    note = f" (masked when logged: {', '.join(entry.masked)})" if entry.masked else ""
    lines += ["", f"Input, as logged{note}:", json.dumps(entry.input, indent=2, ensure_ascii=False)]
    if not isinstance(entry.result, dict) or not breakdown:
        lines += ["", "Full result:", json.dumps(entry.result, indent=2, ensure_ascii=False)]
    return lines


def _detail(result: Any) -> str:
    if not isinstance(result, dict):
        return ""
    parts = []
    if result.get("proposed") not in (None, result.get("outcome")):
        parts.append(f"the policy proposed {result['proposed']}")
    if result.get("shadow"):
        parts.append("shadow mode: the board decides")
    if result.get("profile_level"):
        parts.append(f"consent level {result['profile_level']}")
    if result.get("persona"):
        parts.append(f"persona {result['persona']}")
    return f" ({'; '.join(parts)})" if parts else ""


def _breakdown(result: Any) -> Iterable[str]:
    if not isinstance(result, dict):
        return
    if isinstance(result.get("score"), int | float):
        yield f"  overall score {result['score']}{_thresholds(result.get('thresholds'))}"
    stages = result.get("stages")
    if isinstance(stages, dict):
        for name, stage in stages.items():
            yield from _stage(name, stage, 2)
    elif isinstance(result.get("dimensions"), dict):
        yield from _dimensions(result["dimensions"], 4)


def _thresholds(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    return " (" + ", ".join(f"{k} at {v}" for k, v in sorted(value.items())) + ")"


def _stage(name: str, stage: Any, indent: int) -> Iterable[str]:
    if not isinstance(stage, dict):
        return
    pad = " " * indent
    status = []
    if "score" in stage:
        status.append(f"score {stage['score']}")
    if isinstance(stage.get("passed"), bool):
        status.append("passed" if stage["passed"] else "not passed")
    if stage.get("blocked"):
        status.append("blocked")
    if isinstance(stage.get("verified"), bool):
        status.append("verified" if stage["verified"] else "not verified")
    yield f"{pad}{name}: {', '.join(status) or '-'}"
    if isinstance(stage.get("dimensions"), dict):
        yield from _dimensions(stage["dimensions"], indent + 2)


def _dimensions(dimensions: dict[str, Any], indent: int) -> Iterable[str]:
    pad = " " * indent
    for name, dim in sorted(dimensions.items()):
        if not isinstance(dim, dict):
            yield f"{pad}{name}: {dim}"
            continue
        title = dim.get("title", name)
        score = f"{dim['score']}/100" if "score" in dim else ""
        weight = f" x weight {dim['weight']}" if "weight" in dim else ""
        passed = "" if "passed" not in dim else (" passed" if dim["passed"] else " not passed")
        reason = f": {dim['reason']}" if dim.get("reason") else ""
        yield f"{pad}{title} {score}{weight}{passed}{reason}".replace("  ", " ")
