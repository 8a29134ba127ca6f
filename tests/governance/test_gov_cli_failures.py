"""The third party's, the board's and the operator's commands as a user meets them: the README's
examples as written, what a listing says, and every failure as one plain line with its exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coopfed.node.cli import main

from ..node.conftest import running_node
from .conftest import GREEN, Running, add_member

pytestmark = pytest.mark.integration

README_REGISTER = ["--name", "Example University", "--type", "university",
                   "--commit", "not_for_profit", "--commit", "ethics_approval"]  # fmt: skip
README_SUBMIT = ["request", "submit", "--dataset", "demand", "--field", "kwh", "--field", "member_count",
                 "--from", "2024-01-01", "--to", "2024-02-01", "--purpose", "dpv:AcademicResearch",
                 "--describe", "Evening peaks"]  # fmt: skip


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_readme_third_party_example_and_the_board_after_it(
    gov: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(6):
        add_member(gov.node, GREEN)  # January 2024, as the README's request asks
    monkeypatch.chdir(tmp_path)
    assert main(["org", "register", "--node", gov.address, *README_REGISTER]) == 0
    assert main(README_SUBMIT) == 0
    out = capsys.readouterr().out
    assert "awaiting review" in out  # accepted: referred to the board, not rejected
    assert "rejected" not in out
    config = str(gov.node.settings.base_dir / "coopfed.toml")
    assert main(["review", "token", "--config", config, "--name", "ada", "--node", gov.address]) == 0
    assert main(["review", "token", "--config", config, "--name", "ada"]) == 2  # board.json is kept
    assert "already holds a credential" in capsys.readouterr().out
    assert main(["review", "list"]) == 0
    out = capsys.readouterr().out
    assert "Example University (university, org-" in out
    assert "asks for demand (kwh, member_count, aggregate), 1 Jan 2024 to 31 Jan 2024" in out
    assert "purpose: dpv:AcademicResearch: Evening peaks" in out
    [referred] = _json(capsys, "review", "list")
    assert (referred["organisation"], referred["description"]) == ("Example University", "Evening peaks")
    assert main(["review", "approve", referred["request_id"], "--reason", "Useful, low-risk study"]) == 0
    capsys.readouterr()
    decisions = _json(capsys, "review", "decisions")
    board = [d for d in decisions["decisions"] if d["by"] == "board"]
    counted = [d for d in board if d["agreed"] is not None]  # the summary counts these rows, no others
    assert (decisions["reviewed"], decisions["agreed"]) == (len(counted), sum(d["agreed"] for d in counted))
    assert main(["review", "decisions"]) == 0
    assert f"in {decisions['agreed']} of {decisions['reviewed']} reviews" in capsys.readouterr().out
    [grant] = _json(capsys, "request", "grants")
    assert grant["status"] == "valid"
    assert (
        main(["review", "revoke", grant["grant_id"], "--reason", "Results were shared beyond the study"]) == 0
    )
    capsys.readouterr()
    [grant] = _json(capsys, "request", "grants")  # at once: no refresh
    assert grant["revoked"] is True
    assert grant["status"] == "revoked: Results were shared beyond the study"


def _cli(*argv: str, cwd: Path, stdin: str = "") -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "coopfed.node.cli", *argv],
        capture_output=True, text=True, timeout=120, cwd=cwd, input=stdin, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def saved(gov: Running, tmp_path: Path) -> Path:
    """A folder with an organisation's and a board member's saved credentials for `gov`."""
    config = str(gov.node.settings.base_dir / "coopfed.toml")
    org, board = str(tmp_path / "org.json"), str(tmp_path / "board.json")
    assert main(["org", "register", "--node", gov.address, *README_REGISTER, "--credentials", org]) == 0
    assert (
        main(
            [
                "review",
                "token",
                "--config",
                config,
                "--name",
                "ada",
                "--credentials",
                board,
                "--node",
                gov.address,
            ]
        )
        == 0
    )
    return tmp_path


CASES = {
    "node unreachable": (["org", "register", "--node", "127.0.0.1:9", "--credentials", "x.json",
                          *README_REGISTER], 3, "cannot reach the node"),
    "missing credentials file": (["request", "list", "--credentials", "none.json"], 2, "no credentials in"),
    "bad date": ([*README_SUBMIT[:9], "2024-13-01", *README_SUBMIT[10:]], 2, "not a day (YYYY-MM-DD)"),
    "to before from": ([*README_SUBMIT[:11], "2023-12-01", *README_SUBMIT[12:]], 2, "--to must be a later"),
    "unknown dataset": (["request", "submit", "--dataset", "nosuch", "--from", "2024-01-01", "--to",
                         "2024-02-01", "--purpose", "dpv:AcademicResearch"], 1, "no dataset called 'nosuch'"),
    "unknown grant id": (["review", "revoke", "no-such-grant", "--reason", "ended"], 1, "no-such-grant"),
    "unknown federation grant": (["federation", "revoke", "no-such-grant", "--config", "{config}",
                                  "--reason", "ended"], 1, "no-such-grant"),
    "wrong --config path": (["audit", "export", "--config", "nowhere.toml", "--out", "x.jsonl"], 2,
                            "no node configuration at nowhere.toml"),
    "policy reload, wrong --config": (["policy", "reload", "--config", "nowhere.toml"], 2,
                                      "no node configuration"),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_every_failure_is_one_plain_line_and_its_exit_code(gov: Running, saved: Path, case: str) -> None:
    argv, code, words = CASES[case]
    config = str(gov.node.settings.base_dir / "coopfed.toml")
    argv = [a.format(config=config, address=gov.address) for a in argv]
    rc, out = _cli(*argv, cwd=saved)
    assert "Traceback" not in out
    assert rc == code, out
    assert words in out
    assert "FLOW_" not in out
    assert "Enum " not in out


def test_join_on_loopback_asks_y_n_and_eof_refuses(gov: Running, tmp_path: Path) -> None:
    """No --plaintext needed on loopback; the [y/N] prompt shows; EOF pins nothing; --yes pins."""
    config = str(gov.node.settings.base_dir / "coopfed.toml")
    with running_node(tmp_path / "other", node_id="coop-b") as (_other, address):
        argv = ["federation", "join", address, "--config", config]
        rc, out = _cli(*argv, cwd=tmp_path)  # stdin ends at once
        assert "Traceback" not in out
        assert (rc, "Pin them [y/N]" in out, "nothing pinned" in out) == (1, True, True), out
        rc, out = _cli(*argv, cwd=tmp_path, stdin="n\n")
        assert (rc, "nothing pinned" in out) == (1, True), out
        rc, out = _cli(*argv, "--yes", cwd=tmp_path)
        assert "[y/N]" not in out
        assert (rc, "pinned coop-b" in out) == (0, True), out
