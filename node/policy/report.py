"""An impact report as Markdown a board pastes into a pull request, and as JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coopfed.node.policy.impact import ImpactReport

_MAX_INPUT_CHARS = 4_000  # an example's input in the Markdown; the JSON keeps it whole


def report_json(report: ImpactReport) -> dict[str, Any]:
    return {
        "base": {"ref": report.base, "revision": report.base_revision},
        "head": {"ref": report.head, "revision": report.head_revision},
        "engine": report.engine,
        "entries": report.entries,
        "replayed": report.replayed,
        "distinct_inputs": report.distinct_inputs,
        "changed": report.changed,
        "errors": report.errors,
        "masked_inputs": report.masked,
        "skipped": dict(sorted(report.skipped.items())),
        "malformed": dict(sorted(report.malformed.items())),
        "reproduction": {"logged_under_base": report.logged_under_base, "reproduced": report.reproduced},
        "paths": {
            path: {
                "replayed": impact.replayed,
                "changed": impact.changed,
                "before": dict(sorted(impact.before.items())),
                "after": dict(sorted(impact.after.items())),
                "changed_parts": dict(sorted(impact.parts.items())),
                "transitions": [
                    {"before": b, "after": a, "decisions": n}
                    for (b, a), n in sorted(impact.transitions.items(), key=lambda t: -t[1])
                ],
            }
            for path, impact in sorted(report.paths.items())
        },
        "examples": _outcome_changes_first(report.examples),
        "seconds": round(report.seconds, 3),
    }


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0%"


def report_markdown(report: ImpactReport) -> str:
    lines = [
        f"## Policy impact: `{report.base}` → `{report.head}`",
        "",
        f"Policy revision `{report.base_revision[:12]}` → `{report.head_revision[:12]}`. "
        f"Replayed **{report.replayed:,}** of {report.entries:,} logged decisions "
        f"({report.distinct_inputs:,} distinct inputs) through both revisions ({report.engine} engine).",
        "",
        f"**{report.changed:,} decisions change** ({_pct(report.changed, report.replayed)} of those replayed)"
        if report.changed
        else "**No decision changes.**",
        "",
        "| policy | replayed | changed | outcomes before | outcomes after | what changed |",
        "| --- | ---: | ---: | --- | --- | --- |",
    ]
    for path, impact in sorted(report.paths.items()):
        lines.append(
            f"| `{path}` | {impact.replayed:,} | {impact.changed:,} | {_counts(impact.before)} | "
            f"{_counts(impact.after)} | {_counts(impact.parts)} |"
        )
    lines += _transitions(report)
    lines += _examples(report)
    lines += _notes(report)
    return "\n".join(lines) + "\n"


def _counts(counter: Any) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1])) or "-"


def _transitions(report: ImpactReport) -> list[str]:
    rows = [
        f"| `{path}` | {before} | {after} | {n:,} |"
        for path, impact in sorted(report.paths.items())
        for (before, after), n in sorted(
            impact.transitions.items(), key=lambda t: (t[0][0] == t[0][1], -t[1])
        )
    ]
    if not rows:
        return []
    head = [
        "",
        "### Changes by outcome",
        "",
        "| policy | before | after | decisions |",
        "| --- | --- | --- | ---: |",
    ]
    same = any(b == a for impact in report.paths.values() for b, a in impact.transitions)
    note = ["", "_Same outcome on both sides: the reasons, score or other parts of the decision changed._"]
    return head + rows + (note if same else [])


def _side(name: str, summary: dict[str, Any]) -> list[str]:
    score = f", score {summary['score']}" if "score" in summary else ""
    out = [f"- **{name}**: {summary['outcome']}{score}"]
    if "error" in summary:
        out.append(f"  - error: {summary['error']}")
    out += [f"  - {reason}" for reason in summary.get("reasons", [])]
    return out


def _base_replay(ex: dict[str, Any]) -> list[str]:
    """The base revision's replay, only where it differs from what the node logged."""
    return [] if ex["base"] == ex["logged"] else _side("base revision on replay", ex["base"])


def _outcome_changes_first(examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(examples, key=lambda e: e["base"]["outcome"] == e["head"]["outcome"])


def _examples(report: ImpactReport) -> list[str]:
    if not report.examples:
        return []
    lines = ["", "### Examples", ""]
    for n, ex in enumerate(_outcome_changes_first(report.examples), start=1):
        text = json.dumps(ex["input"], indent=2, sort_keys=True, ensure_ascii=False)
        if len(text) > _MAX_INPUT_CHARS:
            text = text[:_MAX_INPUT_CHARS] + "\n... (cut; the JSON report has it all)"
        lines += [
            f"#### {n}. `{ex['path']}`: {ex['base']['outcome']} → {ex['head']['outcome']}",
            "",
            f"Decision `{ex['decision_id']}` ({ex['timestamp'] or 'no time'}).",
            "",
            *_side(f"before (logged under `{str(ex['logged_revision'])[:12]}`)", ex["logged"]),
            *_base_replay(ex),
            *_side("after", ex["head"]),
            "",
            "<details><summary>input as logged</summary>",
            "",
            "```json",
            text,
            "```",
            "",
            "</details>",
            "",
        ]
    return lines


def _notes(report: ImpactReport) -> list[str]:
    notes = []
    if report.skipped:
        kinds = ", ".join(f"`{p}` {n:,}" for p, n in sorted(report.skipped.items()))
        notes.append(f"- Not replayed (no policy entrypoint: board and grant records): {kinds}.")
    if report.masked:
        notes.append(
            f"- {report.masked:,} replayed inputs were masked when logged (erased, digested or "
            "pseudonymised fields); they were replayed as logged."
        )
    if report.logged_under_base:
        notes.append(
            f"- Of {report.logged_under_base:,} decisions made under the base revision, the replay "
            f"reproduced {report.reproduced:,} exactly."
        )
    if report.errors:
        notes.append(f"- {report.errors:,} replayed decisions raised an evaluation error on one side.")
    if report.malformed:
        bad = ", ".join(f"{why} {n:,}" for why, n in sorted(report.malformed.items()))
        notes.append(f"- Log lines that are not decision-log entries: {bad}.")
    notes.append(f"- Replayed in {report.seconds:.1f} s.")
    return ["", "### Notes", "", *notes]
