"""The portal's ballot pages over HTTP against a real node: the impact, voting, the result."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from coopfed.node.auth import Principal
from coopfed.node.ballots import voting
from coopfed.node.portal.app import create_app
from coopfed.node.runtime import Node, init_node, open_node
from coopfed.node.server import portal_parts
from coopfed.node.settings import load_settings

from ..portal.test_pages import csrf, sign_up
from .conftest import RULES, edit_data


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, Node]]:
    config = init_node(tmp_path / "coop", node_id="coop", name="Riverside Energy Co-op", listen="127.0.0.1:0")
    edit_data(tmp_path / "coop" / "policies", {"ballots": RULES})
    settings = load_settings(config)
    settings = replace(settings, policy=replace(settings.policy, engine="embedded", watch=False))
    with (
        open_node(settings) as node,
        TestClient(
            create_app(portal_parts(node), secure=False, origin="http://localhost"),
            base_url="http://localhost",
        ) as c,
    ):
        yield c, node


def test_a_member_reads_the_impact_votes_and_checks_the_receipt(client: tuple[TestClient, Node]) -> None:
    http, node = client
    sign_up(http, node)
    change = voting.Change("", {"governance": {"thresholds": {"reject": 40}}})
    ballot = voting.propose(
        node, Principal("board", "test"), "Refuse fewer requests", "Refuse below 40, not 45.", [change],
        None, int(time.time()) + 8, int(time.time()),
    )  # fmt: skip
    listing = http.get("/ballots")
    assert "Refuse fewer requests" in listing.text
    page = http.get(f"/ballots/{ballot.ballot_id}")
    assert "past decisions would change" in page.text
    assert "The score below which a data request is refused: 45 becomes 40" in page.text
    r = http.post(f"/ballots/{ballot.ballot_id}/vote", data={"csrf_token": csrf(page.text), "choice": "yes"})
    assert r.status_code == 200, r.text
    receipt = re.search(r"Your receipt is <code>([^<]+)</code>", r.text).group(1)
    again = http.post(f"/ballots/{ballot.ballot_id}/vote", data={"csrf_token": csrf(r.text), "choice": "no"})
    assert again.status_code == 409  # one member, one vote
    assert "You have voted" in http.get(f"/ballots/{ballot.ballot_id}").text

    time.sleep(max(0.0, ballot.closes_unix - time.time()) + 0.2)  # type: ignore[operator]
    result = http.get(f"/ballots/{ballot.ballot_id}")
    assert "Passed" in result.text  # the only admitted member voted yes
    checked = http.post(
        f"/ballots/{ballot.ballot_id}/check", data={"csrf_token": csrf(result.text), "receipt": receipt}
    )
    assert "Your vote is counted as: <strong>Yes: make the change</strong>" in checked.text
    assert json.loads(json.dumps(node.ballots.get_ballot(ballot.ballot_id).tally))["counts"]["yes"] == 1
