"""Attack: buy k-anonymity with fake members. Four registrations upload zeros next to one real
household at k = 5, hoping the aggregate releases the household's exact readings; and the
doors around it: invitations reused or expired, one meter claimed twice, a registration flood."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np
import pytest

from coopfed.node.cli import main
from coopfed.node.client import bearer
from coopfed.node.members import invitation_hash
from coopfed.v1 import common_pb2, member_pb2
from coopfed.v1 import governance_pb2 as pb

from ..governance.conftest import (
    DAY,
    GREEN,
    HH,
    JAN,
    Running,
    add_member,
    approved_grant,
    fetch,
    register,
    start,
)

HOUSEHOLD_KWH = 0.731  # distinctive: if this comes out of a release, the household was exposed


@pytest.fixture
def gov(tmp_path: Path) -> Iterator[Running]:
    yield from start(tmp_path)


def _join(gov: Running, name: str, **fields: str) -> tuple[str, tuple]:
    reply = gov.members.Register(member_pb2.RegisterRequest(display_name=name, **fields))
    md = bearer(reply.token)
    gov.members.SetConsent(
        member_pb2.SetConsentRequest(
            settings=member_pb2.ConsentSettings(level=common_pb2.CONSENT_LEVEL_GREEN)
        ),
        metadata=md,
    )
    return reply.member_id, md


def _upload(gov: Running, md: tuple, days: int, kwh: float) -> None:
    periods = JAN + HH * np.arange(48 * days, dtype=np.int64)
    batch = member_pb2.ReadingBatch(
        dataset="demand", period_start_unix=periods.tolist(), kwh=[kwh] * periods.size
    )
    gov.members.UploadReadings(iter([batch]), metadata=md)


def _invite(gov: Running, days: int = 14) -> str:
    return gov.review.CreateInvitation(
        pb.CreateInvitationRequest(expires_days=days), metadata=gov.board()
    ).code


def _first_day(chunks: list[pb.DataChunk]) -> dict[int, tuple[float, int]]:
    """The released cells of 1 January, the day only the household and the fakes have readings."""
    series = [c.aggregate for c in chunks if c.HasField("aggregate")]
    return {
        p: (k, n)
        for s in series
        for p, k, n in zip(s.period_start_unix, s.kwh, s.member_count, strict=True)
        if p < JAN + DAY
    }


def test_fake_members_cannot_make_a_lone_household_k_anonymous(gov: Running) -> None:
    for _ in range(4):  # real, admitted neighbours, from 2 January: the request meets k overall
        add_member(gov.node, GREEN, days=30, first_day=1)
    _, md = _join(gov, "Household", invitation_code=_invite(gov), meter_id="1200 0012 3456 7")
    _upload(gov, md, days=31, kwh=HOUSEHOLD_KWH)
    fakes = []
    for i in range(4):
        fake, fake_md = _join(gov, f"Fake {i}", meter_id=f"FAKE-{i}")
        _upload(gov, fake_md, days=1, kwh=0.0)
        fakes.append(fake)
    assert gov.members.GetMembership(member_pb2.GetMembershipRequest(), metadata=md).status == "admitted"
    waiting = gov.review.ListApplicants(pb.ListApplicantsRequest(), metadata=gov.board()).applicants
    assert sorted(a.member_id for a in waiting) == sorted(fakes)

    _, org = register(gov)
    grant = approved_grant(gov, org)
    chunks = fetch(gov, grant.token)
    assert _first_day(chunks) == {}  # 1 household + 4 applicants: under k, nothing released
    later = next(c.aggregate for c in chunks if c.HasField("aggregate"))
    assert set(later.member_count) == {5}  # the admitted neighbours and the household do count
    assert np.allclose(later.kwh, HOUSEHOLD_KWH + 4 * 0.5)
    summary = next(c.summary for c in chunks if c.HasField("summary"))
    assert summary.members_released == 5

    for fake in fakes:  # the board admits them after all: their readings join at once
        admitted = gov.review.AdmitMember(
            pb.AdmitMemberRequest(member_id=fake, reason="checked the address"), metadata=gov.board()
        )
        assert admitted.status == "admitted"
        assert admitted.decision_id
    cells = _first_day(fetch(gov, grant.token))
    assert len(cells) == 48
    assert {n for _, n in cells.values()} == {5}
    assert np.allclose([k for k, _ in cells.values()], HOUSEHOLD_KWH)  # exposed only once k are real


def test_an_invitation_admits_once_and_never_after_it_expires(gov: Running) -> None:
    code = _invite(gov)
    first = gov.members.Register(member_pb2.RegisterRequest(display_name="Ann", invitation_code=code))
    assert first.status == "admitted"
    gov.node.store.create_invitation(
        "inv-old", invitation_hash("old-code"), datetime.now(UTC) - timedelta(seconds=1), created_by="board:t"
    )
    for used_or_expired in (code, "old-code", "never-issued"):
        with pytest.raises(grpc.RpcError) as err:
            gov.members.Register(
                member_pb2.RegisterRequest(display_name="Eve", invitation_code=used_or_expired)
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "invitation" in err.value.details()
    assert gov.review.ListApplicants(pb.ListApplicantsRequest(), metadata=gov.board()).applicants == []


def test_a_meter_belongs_to_one_member_until_they_erase(gov: Running) -> None:
    first, md = _join(gov, "Ann", meter_id="1200001234567")
    with pytest.raises(grpc.RpcError) as err:
        _join(gov, "Eve", meter_id="12000 01234 567")  # the same meter, written differently
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "meter" in err.value.details()
    gov.members.EraseMe(member_pb2.EraseRequest(confirm_member_id=first), metadata=md)
    _join(gov, "Eve", meter_id="1200001234567")
    meter_key = gov.node.settings.base_dir / "meter.key"
    assert meter_key.stat().st_mode & 0o777 == 0o600


def test_a_registration_flood_is_refused(gov: Running) -> None:
    burst = gov.node.settings.node.registration_burst
    for i in range(burst):
        gov.members.Register(member_pb2.RegisterRequest(display_name=f"Bot {i}"))
    with pytest.raises(grpc.RpcError) as err:
        gov.members.Register(member_pb2.RegisterRequest(display_name="Bot again"))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "too many registrations" in err.value.details()
    assert len(gov.node.store.applicants()) == burst


def test_admission_on_the_command_line(
    gov: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    board, config = str(tmp_path / "board.json"), str(gov.node.settings.base_dir / "coopfed.toml")
    assert main(["review", "token", "--credentials", board, "--config", config, "--name", "ada",
                 "--node", gov.address]) == 0  # fmt: skip
    assert main(["review", "invite", "--credentials", board, "--expires", "3"]) == 0
    code = re.search(r"invitation code: (\S+)", capsys.readouterr().out).group(1)
    invited, applied = str(tmp_path / "ann.json"), str(tmp_path / "bob.json")
    assert main(["member", "register", "--credentials", invited, "--node", gov.address, "--name", "Ann",
                 "--invitation", code, "--meter", "1200001234567"]) == 0  # fmt: skip
    assert "you are a member" in capsys.readouterr().out
    assert main(["member", "register", "--credentials", applied, "--node", gov.address, "--name", "Bob"]) == 0
    assert "you have applied" in capsys.readouterr().out
    assert main(["review", "applicants", "--credentials", board, "--json"]) == 0
    (waiting,) = json.loads(capsys.readouterr().out)
    assert waiting["name"] == "Bob"
    assert (
        main(["review", "admit", "--credentials", board, waiting["member_id"], "--reason", "neighbour"]) == 0
    )
    assert "is now admitted" in capsys.readouterr().out
    assert main(["member", "status", "--credentials", applied]) == 0
    out = capsys.readouterr().out
    assert "you are a member" in out
    assert "decided" in out
    assert main(["review", "refuse", "--credentials", board, waiting["member_id"], "--reason", "late"]) == 1
    assert "admitted already" in capsys.readouterr().out
