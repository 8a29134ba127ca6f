"""examples/third_party_client.py, run as a third party would, against a real node and its board."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from coopfed.v1 import governance_pb2 as pb

from .conftest import GREEN, RED, add_member

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "third_party_client.py"


@pytest.mark.integration
def test_example_client_is_referred_approved_by_the_board_and_streams(gov):
    for _ in range(7):
        add_member(gov.node, GREEN, datasets=("demand", "generation"))
    add_member(gov.node, RED, datasets=("demand", "generation"))
    client = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--node", gov.address, "--from", "2024-01-01", "--to", "2024-02-01",
         "--wait", "60"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines = []
    for line in client.stdout:  # the client prints its request before it waits for the board
        lines.append(line)
        if line.startswith("request "):
            break
    assert "OUTCOME_REFER" in lines[-1], lines
    referred = gov.review.ListReferred(pb.ListReferredRequest(), metadata=gov.board()).requests
    gov.review.RecordDecision(
        pb.RecordDecisionRequest(
            request_id=referred[0].request_id, outcome=pb.OUTCOME_APPROVE, reason="a sound study"
        ),
        metadata=gov.board(),
    )
    out = "".join(lines) + client.stdout.read()
    assert client.wait(90) == 0, out
    assert "offers: demand, export, generation" in out
    assert "demand: 1488 half-hours" in out
    assert "generation: 1488 half-hours" in out
    assert "7 members released; 0 cells withheld" in out
