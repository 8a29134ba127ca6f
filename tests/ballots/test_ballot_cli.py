"""`coopfed ballot ...` and `coopfed policy bundle --ballot` against a real node, end to end."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from coopfed.node.cli import main
from coopfed.node.client import Credentials
from coopfed.node.credentials import issue_board_token

from .conftest import Coop

pytestmark = pytest.mark.integration


def _creds(coop: Coop, tmp_path: Path, who: str) -> str:
    path = tmp_path / f"{who}.json"
    token = (
        issue_board_token(coop.node.node_id, coop.node.keys, "ada", 3600)
        if who == "board"
        else coop.node.credentials.issue_member_token(who)
    )
    Credentials(coop.address, who, token).save(path, force=True)
    return str(path)


def test_from_a_members_proposal_to_the_bundle_the_board_signs(coop: Coop, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol, board = (_creds(coop, tmp_path, w) for w in ("alice", "bob", "carol", "board"))
    change = json.dumps({"open_data": {"licence": {"name": "CC0-1.0", "title": "Public domain (CC0 1.0)"}}})
    assert main(["ballot", "propose", "--title", "Public domain open data", "--explanation",
                 "Publish our open data with no conditions.", "--change", change, "--credentials", alice,
                 "--json"]) == 0  # fmt: skip
    ballot_id = json.loads(capsys.readouterr().out)["ballot_id"]
    assert main(["ballot", "sign", ballot_id, "--credentials", bob]) == 0
    assert "open for voting" in capsys.readouterr().out
    assert main(["ballot", "list", "--credentials", carol]) == 0
    assert "Public domain open data" in capsys.readouterr().out
    for creds, choice in ((alice, "yes"), (bob, "yes"), (carol, "abstain")):
        assert main(["ballot", "vote", ballot_id, choice, "--credentials", creds]) == 0
    assert "Your receipt" in capsys.readouterr().out
    assert main(["ballot", "vote", ballot_id, "no", "--credentials", carol]) == 1
    assert "already exists: you voted" in capsys.readouterr().out
    assert main(["ballot", "apply", ballot_id, "--policies", str(coop.policies), "--credentials", board]) == 1
    assert "no change to apply" in capsys.readouterr().out  # not counted yet

    closes = coop.node.ballots.get_ballot(ballot_id).closes_unix
    time.sleep(max(0.0, closes - time.time()) + 0.2)  # type: ignore[operator]
    assert main(["ballot", "tally", ballot_id, "--credentials", board]) == 0
    assert (
        "result: passed (yes 2, no 0, abstain 1; 3 of 3 members voted, quorum met)" in capsys.readouterr().out
    )
    assert main(["ballot", "apply", ballot_id, "--policies", str(coop.policies), "--credentials", board]) == 0
    flag = re.search(r"--ballot (\S+)", capsys.readouterr().out).group(1)
    key = tmp_path / "ada.key"
    coop.board_key.save(key, tmp_path / "ada.pub")
    staged = tmp_path / "staged.tar.gz"
    bundle = ["policy", "bundle", "--policies", str(coop.policies), "--key", str(key), "--out", str(staged)]
    assert main([*bundle, "--serial", "2", "--ballot", flag]) == 0
    os.replace(staged, coop.folder / "bundle.tar.gz")
    outcome = coop.node.policy.reloader.reload()
    assert outcome.ok, outcome.reason
    assert coop.node.policy_data["open_data"]["licence"]["name"] == "CC0-1.0"
    with pytest.raises(SystemExit) as usage:
        main([*bundle, "--ballot", "not-a-ballot"])
    assert usage.value.code == 2
    assert "a ballot as ID:TALLY_DIGEST" in capsys.readouterr().err


def test_the_board_proposes_alternatives_with_a_closing_time(coop: Coop, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    board = _creds(coop, tmp_path, "board")
    closes = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    assert main([
        "ballot", "propose", "--credentials", board, "--json", "--title", "Which allocation key",
        "--explanation", "Share local energy equally, or by consumption as now.",
        "--alternative", 'equal shares={"ledger": {"key": "equal"}}',
        "--alternative", 'by consumption={"ledger": {"key": "pro_rata"}}',
        "--closes", closes.isoformat(),
    ]) == 0  # fmt: skip
    shown = json.loads(capsys.readouterr().out)
    assert shown["closes"] == closes.isoformat()
    assert shown["choices"] == ["a1 (equal shares)", "a2 (by consumption)", "abstain (abstain)"]
    assert shown["alternatives"][1]["changes"] == []  # the second keeps today's key
    assert main(["ballot", "propose", "--credentials", board, "--title", "t", "--explanation", "e"]) == 2
    assert "give --change" in capsys.readouterr().out
