"""`member access` after a real release: a third party's approved request, streamed, seen by the member."""

from __future__ import annotations

from datetime import datetime

from coopfed.node.localtime import local_time
from coopfed.v1 import governance_pb2 as pb
from tests.governance.conftest import GREEN, add_member, approved_grant, data_request, fetch, gov, register

from .test_cli_member import Cli

__all__ = ["gov"]  # the fixture, used by name


def test_the_member_sees_who_received_their_data_in_local_time(gov, tmp_path, capsys):
    member = Cli(capsys, tmp_path / "member.json")
    code = gov.review.CreateInvitation(pb.CreateInvitationRequest(), metadata=gov.board()).code
    member("register", "--node", gov.address, "--name", "Grace", "--invitation", code)
    member("set-consent", "--level", "green")
    csv = tmp_path / "jan.csv"
    # Winter in London is UTC+0: bare times are the same instants as the Z ones below.
    csv.write_text(
        "dataset,period_start,kwh\n" + "".join(f"demand,2024-01-01T{h:02}:00,1\n" for h in range(24))
    )
    assert "stored 24 new readings" in member("upload", str(csv))
    for _ in range(4):
        add_member(gov.node, GREEN, days=1)
    _, md = register(gov)
    fetch(gov, approved_grant(gov, md, data_request(days=1)).token)

    [entry] = member.json("access")
    assert entry["organisation"] == "Example University"
    assert entry["purpose"] == "academic research"
    assert entry["flow"] == "third_party"
    assert entry["from"] == entry["to"] == "1 Jan 2024"
    table = member("access")
    assert local_time(datetime.fromisoformat(entry["at"])) in table  # e.g. "Tue 1 Dec 2026, 21:30 GMT"
    assert "third parties" in table
    assert "FLOW_" not in table
