"""Impact analysis: a decision log replayed through two git revisions of policies/."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from coopfed.node.cli import main
from coopfed.node.policy import load_policies
from coopfed.node.policy.embedded import EmbeddedEngine
from coopfed.node.policy.impact import ImpactAnalysis, ImpactReport, LogEntry, outcome_of
from coopfed.node.policy.replay import checkout, make_replayer

from ..policy.cases import CASES

CONSENT = "coopfed/consent/decision"
GOVERNANCE = "coopfed/governance/decision"
NOW = 1_710_000_000


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, policy_dir: Path) -> Path:
    """A repository with two commits: the policies, then a stricter approval and a narrower persona."""
    repo = tmp_path_factory.mktemp("repo")
    shutil.copytree(policy_dir, repo / "policies")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "base")
    data = json.loads((repo / "policies" / "data.json").read_text())
    data["governance"]["thresholds"]["approve"] = 90
    data["consent"]["personas"]["research_friendly"]["purposes"]["third_party"] = ["dpv:AcademicResearch"]
    (repo / "policies" / "data.json").write_text(json.dumps(data, indent=2))
    _git(repo, "commit", "-q", "-am", "head")
    return repo


def _governance_input(score: int, verified: bool) -> dict[str, Any]:
    return {
        "request": {
            "datasets": ["demand"],
            "fields": ["kwh", "member_count"],
            "granularity": "aggregate",
            "period": {"start": 1704067200, "end": 1706745600},
            "flow": "third_party",
            "purpose": {
                "code": "dpv:AcademicResearch",
                "description": "Evening peaks in community energy use",
            },
            "commitments": ["results_shared_with_members"],
        },
        "catalogue": {
            "demand": {
                "held": True,
                "period": {"start": 1672531200, "end": 1735689600},
                "consenting_members": 12,
            }
        },
        "organisation": {
            "id": "org-1",
            "assessment": {"score": score, "verified": verified, "expires_at": NOW + 86400},
        },
        "now": NOW,
    }


def _inputs() -> list[tuple[str, Any]]:
    consent = [(CONSENT, c.input) for c in CASES]
    governance = [
        (GOVERNANCE, _governance_input(s, v)) for s in (20, 50, 75, 85, 95, 100) for v in (True, False)
    ]
    return consent * 2 + governance * 3  # repeats, as a real log has


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory, policy_dir: Path) -> Path:
    """A JSON-lines export: real base decisions, a board record, a masked entry and a bad line."""
    base = load_policies(policy_dir)
    engine = EmbeddedEngine(base)
    lines = []
    for path, value in _inputs():
        entry = {"decision_id": str(uuid.uuid4()), "path": path, "input": value, "revision": base.revision}
        entry["result"] = engine.evaluate(path, value)
        lines.append(json.dumps(entry))
    masked = {
        **json.loads(lines[-1]),
        "decision_id": "masked-1",
        "masked": ["/input/request/purpose/description"],
    }
    lines.append(json.dumps(masked))
    review = {
        "decision_id": "r-1",
        "path": "coopfed/governance/review",
        "input": {},
        "result": {"outcome": "approve"},
    }
    lines += [json.dumps(review), "{not json"]
    engine.close()
    out = tmp_path_factory.mktemp("log") / "decisions.jsonl"
    out.write_text("\n".join(lines) + "\n")
    return out


def _expected(repo: Path, tmp_path: Path) -> Counter[tuple[str, str, str]]:
    """Brute force, one entry at a time: the (path, before, after) of every changed decision."""
    base_dir = checkout("HEAD~1", tmp_path, repo=repo)
    engines = [EmbeddedEngine(load_policies(d)) for d in (base_dir, repo / "policies")]
    changes: Counter[tuple[str, str, str]] = Counter()
    for path, value in [*_inputs(), _inputs()[-1]]:  # the masked entry repeats the last input
        before, after = (e.evaluate(path, value) for e in engines)
        if before != after:
            changes[(path, outcome_of((True, before)), outcome_of((True, after)))] += 1
    return changes


@pytest.mark.parametrize("engine", ["embedded", "wasm", pytest.param("opa", marks=pytest.mark.integration)])
def test_diff_reports_every_changed_decision(
    repo: Path, log: Path, tmp_path: Path, engine: str, opa_binary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COOPFED_OPA", opa_binary)
    out_json, out_md = tmp_path / "impact.json", tmp_path / "impact.md"
    args = ["policy", "diff", "--base", "HEAD~1", "--head", "HEAD", "--repo", str(repo), "--log", str(log)]
    assert main([*args, "--engine", engine, "--json", str(out_json), "--markdown", str(out_md)]) == 0
    report = json.loads(out_json.read_text())
    total = len(_inputs()) + 1
    assert (report["entries"], report["replayed"]) == (total + 1, total)
    assert report["skipped"] == {"coopfed/governance/review": 1}
    assert report["malformed"] == {"not JSON": 1}
    assert report["masked_inputs"] == 1
    assert report["reproduction"] == {"logged_under_base": total, "reproduced": total}
    assert report["distinct_inputs"] < total  # repeats were evaluated once
    found = Counter(
        {
            (path, t["before"], t["after"]): t["decisions"]
            for path, info in report["paths"].items()
            for t in info["transitions"]
        }
    )
    assert found == _expected(repo, tmp_path)
    assert found[(GOVERNANCE, "approve", "refer")] > 0
    assert found[(CONSENT, "allowed", "refused")] > 0
    assert report["changed"] == sum(found.values())
    example = next(e for e in report["examples"] if e["base"]["outcome"] != e["head"]["outcome"])
    assert example["base"]["reasons"]
    assert example["head"]["reasons"] != example["base"]["reasons"]
    markdown = out_md.read_text()
    assert "## Policy impact: `HEAD~1` → `HEAD`" in markdown
    assert f"| `{GOVERNANCE}` | approve | refer |" in markdown
    assert "reaches the approval threshold of 70" in markdown  # a reason from before
    assert "lies between the thresholds" in markdown  # and one from after


def test_diff_shows_before_as_the_node_logged_it(repo: Path, log: Path, tmp_path: Path) -> None:
    """ "Before" is the logged decision, even where a replay of the base revision answers otherwise."""
    lines = log.read_text().splitlines()
    edited = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            edited.append(line)
            continue
        if entry.get("path") == GOVERNANCE:  # as if the node had decided differently at the time
            entry["result"] = {**entry["result"], "outcome": "reject", "score": 3, "reasons": ["logged"]}
        edited.append(json.dumps(entry))
    doctored = tmp_path / "logged.jsonl"
    doctored.write_text("\n".join(edited) + "\n")
    out_json, out_md = tmp_path / "impact.json", tmp_path / "impact.md"
    args = [
        "policy",
        "diff",
        "--base",
        "HEAD~1",
        "--head",
        "HEAD",
        "--repo",
        str(repo),
        "--log",
        str(doctored),
    ]
    assert main([*args, "--engine", "embedded", "--json", str(out_json), "--markdown", str(out_md)]) == 0
    example = next(e for e in json.loads(out_json.read_text())["examples"] if e["path"] == GOVERNANCE)
    assert example["logged"] == {"outcome": "reject", "score": 3, "reasons": ["logged"]}
    markdown = out_md.read_text()
    assert "**before (logged under" in markdown
    assert ": reject, score 3" in markdown  # what the node logged, not the replay
    assert "base revision on replay" in markdown  # and the replay, since it differs


def test_the_same_revision_on_both_sides_changes_nothing(repo: Path, log: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    args = ["policy", "diff", "--base", "HEAD", "--head", "HEAD", "--repo", str(repo), "--log", str(log)]
    assert main([*args, "--engine", "embedded"]) == 0
    assert "**No decision changes.**" in capsys.readouterr().out


def test_an_unknown_revision_is_an_error(repo: Path, log: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    args = [
        "policy",
        "diff",
        "--base",
        "no-such-rev",
        "--head",
        "HEAD",
        "--repo",
        str(repo),
        "--log",
        str(log),
    ]
    assert main([*args, "--engine", "embedded"]) == 2
    assert "no-such-rev" in capsys.readouterr().out


@pytest.mark.parametrize("engine", ["embedded", "wasm"])
def test_an_input_that_is_not_json_is_an_error_and_key_order_is_one_input(
    repo: Path, tmp_path: Path, engine: str, opa_binary: str
) -> None:
    value = _governance_input(85, True)
    inputs = [value, {**value, "now": float("nan")}, dict(reversed(value.items())), value]
    base = make_replayer(checkout("HEAD~1", tmp_path, repo=repo), engine, opa_binary)
    head = make_replayer(repo / "policies", engine, opa_binary)
    report = ImpactReport("HEAD~1", "HEAD", base.policies.revision, head.policies.revision, engine)
    try:
        entries = [LogEntry(str(n), GOVERNANCE, v, None, "") for n, v in enumerate(inputs * 2)]
        ImpactAnalysis(base, head, report).run(entries)
        expected = [outcome_of(r.evaluate_many(GOVERNANCE, [value])[0]) for r in (base, head)]
    finally:
        base.close()
        head.close()
    assert report.distinct_inputs == 2  # the reordered copy is the same input
    assert report.errors == 2
    impact = report.paths[GOVERNANCE]
    assert impact.before == Counter({expected[0]: 6, "error": 2})
    assert impact.after == Counter({expected[1]: 6, "error": 2})
