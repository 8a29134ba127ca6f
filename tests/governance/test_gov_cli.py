"""The command line: a third party, the board and an auditor, against a real node."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from coopfed.node.cli import main

from .conftest import GREEN, Running, add_member

pytestmark = pytest.mark.integration


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main([*argv])
    return code, capsys.readouterr().out


def test_a_third_party_and_the_board_on_the_command_line(
    gov: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(5):
        add_member(gov.node, GREEN)
    org, board = str(tmp_path / "org.json"), str(tmp_path / "board.json")
    config = str(gov.node.settings.base_dir / "coopfed.toml")
    code, out = _run(capsys, "org", "--credentials", org, "register", "--node", gov.address, "--name", "Uni",
                     "--type", "university", "--commit", "not_for_profit")  # fmt: skip
    assert code == 0
    assert "registered as org-" in out
    assert (Path(org).stat().st_mode & 0o777) == 0o600
    code, out = _run(capsys, "org", "--credentials", org, "datasets")
    assert "demand" in out
    submit = ["submit", "--dataset", "demand", "--field", "kwh", "--from", "2024-01-01", "--to", "2024-01-08"]
    code, out = _run(capsys, "request", "--credentials", org, *submit, "--purpose", "dpv:AcademicResearch",
                     "--describe", "Evening peaks in community energy use")  # fmt: skip
    assert code == 0
    assert "awaiting review" in out
    request_id = out.split("request ")[1].split(":")[0].strip()
    assert _run(capsys, "review", "--credentials", board, "token", "--config", config, "--name", "ada",
                "--node", gov.address)[0] == 0  # fmt: skip
    code, out = _run(capsys, "review", "--credentials", board, "list")
    assert request_id in out
    code, out = _run(
        capsys, "review", "--credentials", board, "approve", request_id, "--reason", "Good study"
    )
    assert "approved" in out
    grant_id = re.search(r"grant (\S+) until", out).group(1)
    code, out = _run(capsys, "request", "--credentials", org, "show", request_id)
    assert f"grant {grant_id} until" in out
    assert "board: approve: Good study" in out
    csv_path = tmp_path / "data.csv"
    code, out = _run(capsys, "request", "--credentials", org, "fetch", grant_id, "--out", str(csv_path))
    assert code == 0
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "dataset,member_ref,period_start,kwh,member_count"
    assert len(lines) == 1 + 7 * 48
    code, out = _run(capsys, "review", "--credentials", board, "decisions")
    assert "board agreed with the policy's proposal in 0 of 0 reviews" in out
    code, out = _run(capsys, "review", "--credentials", board, "revoke", grant_id, "--reason", "Study ended")
    assert "revoked" in out
    assert (
        _run(capsys, "request", "--credentials", org, "fetch", grant_id, "--out", str(csv_path))[0] == 1
    )  # refused: the grant was revoked


def _tamper(db: Path, sql: str, *args: object) -> None:
    """What someone with the database file could do: drop the append-only guards and edit."""
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER IF EXISTS decision_log_no_update")
        conn.execute("DROP TRIGGER IF EXISTS decision_log_no_delete")
        conn.execute(sql, args)


def test_audit_verify_names_edited_and_deleted_entries(
    gov: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(3):
        gov.node.decision_log.append(gov.node.decision_log.event("coopfed/test", {"n": 1}, {"ok": True}, "r"))
    config = str(gov.node.settings.base_dir / "coopfed.toml")
    code, out = _run(capsys, "audit", "verify", "--config", config)
    assert code == 0
    assert "decision log verified: 3 entries" in out
    head = out.split("head ")[1].split()[0]
    export = tmp_path / "log.jsonl"
    assert _run(capsys, "audit", "export", "--config", config, "--out", str(export))[0] == 0
    assert _run(capsys, "audit", "verify", "--file", str(export), "--head", head)[0] == 0
    lines = export.read_text().splitlines(keepends=True)
    (tmp_path / "cut.jsonl").write_text("".join(lines[:2]))
    code, out = _run(capsys, "audit", "verify", "--file", str(tmp_path / "cut.jsonl"), "--head", head)
    assert code == 1
    assert "entries 3 to 3 were cut off" in out
    (tmp_path / "moved.jsonl").write_text("".join([lines[1], lines[0], lines[2]]))
    code, out = _run(capsys, "audit", "verify", "--file", str(tmp_path / "moved.jsonl"))
    assert code == 1
    assert "reordered" in out
    db = gov.node.settings.path(gov.node.settings.storage.path)
    _tamper(db, "UPDATE decision_log SET entry_json = json_set(entry_json, '$.result.ok', json('false')) "
                "WHERE position = 2")  # fmt: skip
    code, out = _run(capsys, "audit", "verify", "--config", config)
    assert code == 1
    assert "entry 2 (decision" in out
    assert "was edited" in out
    _tamper(db, "DELETE FROM decision_log WHERE position = 1")
    code, out = _run(capsys, "audit", "verify", "--config", config)
    assert "entry 1 was deleted" in out
