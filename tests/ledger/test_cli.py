"""`coopfed ledger ...` on a node's folder: settle, statement in plain words, journal as CSV and PNG."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from coopfed.node.cli import main
from coopfed.node.ledger.chart import day_matching
from coopfed.node.runtime import Node
from coopfed.node.storage.ledger import JournalLine

from .conftest import add_member


def _config(node: Node) -> str:
    return str(node.settings.base_dir / "coopfed.toml")


def test_settle_statement_and_journal(node: Node, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_member(node, "ann", demand=1.0)
    add_member(node, "zed", demand=0.0, generation=0.5, export=0.5)
    days = ["--from", "2024-01-01", "--to", "2024-01-02", "--config", _config(node)]
    node.store.close()  # the CLI opens the folder itself
    assert main(["ledger", "settle", *days]) == 0
    out = capsys.readouterr().out
    assert "half-hours settled: 48" in " ".join(out.split())
    assert main(["ledger", "statement", *days, "--member", "ann"]) == 0
    out = capsys.readouterr().out
    assert "£4.32 for 24.000 kWh" in out  # 0.5 kWh a half-hour locally at 18p
    # grid alone: 48 kWh at 28.5p = £13.68; paid £4.32 + 48 x 14p (14.25p a half-hour, to the penny)
    assert "saved against the grid alone:     £2.64" in out
    assert "zed" not in out  # nothing of another member
    assert "1704" not in out  # no unix seconds
    assert (
        main(
            ["ledger", "journal", *days, "--csv", str(tmp_path / "j.csv"), "--chart", str(tmp_path / "d.png")]
        )
        == 0
    )
    rows = list(csv.DictReader((tmp_path / "j.csv").open()))
    assert rows[0]["date"] == "2024-01-01"
    assert rows[0]["time"] == "00:00"
    debits = sum(float(r["debit"] or 0) for r in rows)
    assert round(debits - sum(float(r["credit"] or 0) for r in rows), 2) == 0
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"


def test_an_unknown_member_is_refused_in_plain_words(node: Node, capsys: pytest.CaptureFixture[str]) -> None:
    node.store.close()
    days = ["--from", "2024-01-01", "--to", "2024-01-02", "--config", _config(node)]
    assert main(["ledger", "statement", *days, "--member", "nobody"]) == 1
    err = capsys.readouterr().out
    assert "nobody" in err
    assert "Traceback" not in err


def test_a_days_chart_takes_only_that_days_lines_from_a_longer_journal() -> None:
    day = 1_704_067_200  # 1 Jan 2024, midnight UTC
    periods = np.arange(day, day + 86_400, 1800)
    lines = [
        JournalLine(1, day, "final", None, "r", "coop", "local_sales", 10, 500),
        JournalLine(2, day + 86_400, "final", None, "r", "coop", "local_sales", 10, 700),  # the next day
    ]
    frame = day_matching(lines, periods)
    assert frame["matched"].tolist() == [0.5] + [0.0] * 47
