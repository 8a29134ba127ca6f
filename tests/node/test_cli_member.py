"""The member commands of the CLI against a real node: register, consent, upload, export, erase."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from coopfed.node import cli


def test_member_walks_through_the_cli(node, tmp_path, capsys):
    _, address = node
    creds = tmp_path / "member.json"

    def run(*args: str) -> str:
        assert cli.main(["member", "--credentials", str(creds), *args]) == 0
        return capsys.readouterr().out

    assert "registered as m-" in run("register", "--node", address, "--name", "Ada")
    assert (creds.stat().st_mode & 0o777) == 0o600
    assert "community_first" in run("personas")
    changed = run("set-consent", "--level", "amber", "--allow", "demand=coop_to_coop,open_data", "--nudges")
    assert "level: red -> amber" in changed
    consent = json.loads(run("consent"))
    assert consent["level"] == "CONSENT_LEVEL_AMBER"
    assert consent["nudges"] is True

    start = (int(time.time()) // 1800 - 100) * 1800
    csv = tmp_path / "readings.csv"
    rows = [
        f"demand,{datetime.fromtimestamp(start + 1800 * i, UTC):%Y-%m-%dT%H:%M},{0.1 * i:.1f}"
        for i in range(5)
    ]
    csv.write_text("dataset,period_start,kwh\n" + "\n".join(rows) + "\n")
    assert "stored 5 new readings" in run("upload", str(csv))
    exported = tmp_path / "export.json"
    run("export", "--out", str(exported))
    chunks = json.loads(exported.read_text())
    assert chunks[0]["profile"]["displayName"] == "Ada"
    assert [float(k) for k in chunks[1]["readings"]["kwh"]] == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert "no one outside the co-op" in run("access")

    assert cli.main(["member", "--credentials", str(creds), "erase"]) == 2  # needs --yes
    assert "erased 5 readings" in run("erase", "--yes")
    assert not creds.exists()


def test_bad_csv_row_is_reported_with_its_line(node, tmp_path, capsys):
    _, address = node
    creds = tmp_path / "member.json"
    assert (
        cli.main(["member", "--credentials", str(creds), "register", "--node", address, "--name", "Bo"]) == 0
    )
    csv = tmp_path / "bad.csv"
    csv.write_text("dataset,period_start,kwh\ndemand,2024-01-01T00:00,0.5\ndemand,not-a-time,0.5\n")
    assert cli.main(["member", "--credentials", str(creds), "upload", str(csv)]) == 2
    assert "bad.csv:3" in capsys.readouterr().out
