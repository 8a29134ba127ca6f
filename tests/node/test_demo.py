"""The demo's walk-through: federation, forecast, and third parties decided by policy and board."""

from __future__ import annotations

import asyncio
import io
import re

import pytest
from rich.console import Console

from coopfed.node.cli.demo import walk_through


@pytest.mark.integration
def test_demo_shows_the_whole_coop(tmp_path):
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    shown = asyncio.run(walk_through(tmp_path / "demo", console))
    text = out.getvalue()

    assert shown.pinned == ("riverside>fellside", "fellside>riverside")
    assert shown.refused == ("market-town",)
    assert shown.forecast_contributors == ("riverside", "fellside")
    decided = {name: (d.policy, d.final, d.decided_by) for name, d in shown.third_parties.decided.items()}
    assert decided == {
        "Northbridge University": ("approve", "approve", "policy"),
        "Riverside Borough Council": ("refer", "approve", "board"),
        "Brightwatt Analytics Ltd": ("reject", "reject", "policy"),
    }
    assert shown.third_parties.decided["Riverside Borough Council"].grant_id
    assert not shown.third_parties.decided["Brightwatt Analytics Ltd"].grant_id
    assert shown.third_parties.rows_streamed > 0
    released = [
        e for e in shown.third_parties.member_access if e.organisation_name == "Northbridge University"
    ]
    assert {e.dataset for e in released} == {"demand", "generation"}
    assert {e.grant_id for e in released} == {shown.third_parties.decided["Northbridge University"].grant_id}

    # what a person reads: reasons and scores in words, local times, nothing internal
    assert "The co-op never releases data for" in text  # the company's rejection, in the policy's words
    assert "The organisation is not verified yet, so the board decides." in text
    assert re.search(r"policy: approve \(score \d+/100", text)
    assert re.search(r"\w{3} \d+ \w{3} \d\d:\d\d: Northbridge University received your", text)
    assert not re.search(r"FLOW_|OUTCOME_|REQUEST_STATE_|GRANULARITY_|Traceback", text), text
    assert not re.search(r"\b1[6-9]\d{8}\b", text)  # no unix seconds
