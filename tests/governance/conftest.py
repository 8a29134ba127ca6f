"""Fixtures: a real node with governance on a loopback port, the board, organisations and members."""

from __future__ import annotations

import base64
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from coopfed.node.client import bearer, grant_bearer
from coopfed.node.credentials import issue_board_token
from coopfed.node.model import ConsentLevel, ConsentSettings, Flow
from coopfed.node.runtime import Node
from coopfed.v1 import common_pb2, member_pb2_grpc
from coopfed.v1 import governance_pb2 as pb
from coopfed.v1 import governance_pb2_grpc as pb_grpc

from ..node.conftest import POLICIES, running_node

HH = 1800
JAN = 1704067200  # 2024-01-01T00:00Z
DAY = 86_400
FAST = {"COOPFED_STORAGE__SYNCHRONOUS": "NORMAL"}  # a killed test process may lose the last commit


def policies_with(folder: Path, **governance: Any) -> Path:
    """A copy of the repository's policies with governance data changed (e.g. shadow_mode=True)."""
    target = folder / "policies"
    shutil.copytree(POLICIES, target, ignore=shutil.ignore_patterns("*_test.rego"))
    data = json.loads((target / "data.json").read_text())
    data["governance"].update(governance)
    (target / "data.json").write_text(json.dumps(data))
    return target


@dataclass
class Running:
    node: Node
    address: str
    channel: grpc.Channel

    @property
    def governance(self) -> pb_grpc.GovernanceServiceStub:
        return pb_grpc.GovernanceServiceStub(self.channel)

    @property
    def review(self) -> pb_grpc.ReviewServiceStub:
        return pb_grpc.ReviewServiceStub(self.channel)

    @property
    def data(self) -> pb_grpc.DataServiceStub:
        return pb_grpc.DataServiceStub(self.channel)

    @property
    def members(self) -> member_pb2_grpc.MemberServiceStub:
        return member_pb2_grpc.MemberServiceStub(self.channel)

    def board(self, name: str = "ada") -> tuple:
        return bearer(issue_board_token(self.node.node_id, self.node.keys, name, 3600))


def start(folder: Path, policies: Path | None = None) -> Iterator[Running]:
    env = dict(FAST)
    if policies is not None:
        env["COOPFED_POLICY__DIR"] = str(policies)
    with running_node(folder / "node", env=env) as (node, address), grpc.insecure_channel(address) as channel:
        yield Running(node, address, channel)


@pytest.fixture
def gov(tmp_path: Path) -> Iterator[Running]:
    yield from start(tmp_path)


def add_member(
    node: Node,
    settings: ConsentSettings,
    days: int = 31,
    datasets: tuple[str, ...] = ("demand",),
    first_day: int = 0,
) -> str:
    """A member with half-hourly readings from 1 January 2024 (+ first_day), straight into storage."""
    member_id = "m-" + uuid.uuid4().hex[:12]
    node.store.create_member(member_id, "member", settings, admitted_by="test")
    periods = JAN + first_day * DAY + HH * np.arange(48 * days, dtype=np.int64)
    node.store.put_readings(member_id, [(ds, periods, np.full(periods.size, 0.5)) for ds in datasets])
    return member_id


GREEN = ConsentSettings(level=ConsentLevel.GREEN)
RED = ConsentSettings(level=ConsentLevel.RED)
AMBER_THIRD_PARTY = ConsentSettings(
    level=ConsentLevel.AMBER, choices={"demand": frozenset({Flow.THIRD_PARTY})}
)


def register(
    gov: Running, type_: str = "university", commitments: tuple[str, ...] = ("not_for_profit",)
) -> tuple:
    reply = gov.governance.RegisterOrganisation(
        pb.RegisterOrganisationRequest(
            name="Example University", type=type_, contact="data@example.ac.uk", commitments=commitments
        )
    )
    return reply.organisation_id, bearer(reply.token)


def data_request(
    granularity: int = pb.GRANULARITY_AGGREGATE,
    fields: tuple[str, ...] = ("kwh", "member_count"),
    days: int = 31,
    purpose: str = "dpv:AcademicResearch",
    datasets: tuple[str, ...] = ("demand",),
) -> pb.DataRequest:
    return pb.DataRequest(
        datasets=datasets,
        fields=fields,
        granularity=granularity,
        period=common_pb2.Period(start_unix=JAN, end_unix=JAN + days * DAY),
        flow=common_pb2.FLOW_THIRD_PARTY,
        purpose=purpose,
        purpose_description="Evening peaks in community energy use, for a published study",
        commitments=["results_shared_with_members"],
    )


def verify_org(gov: Running, organisation_id: str) -> None:
    gov.review.VerifyOrganisation(
        pb.VerifyOrganisationRequest(
            organisation_id=organisation_id, verified=True, note="checked the register"
        ),
        metadata=gov.board(),
    )


def approved_grant(gov: Running, md: tuple, request: pb.DataRequest | None = None) -> pb.Grant:
    """Submit a request and, if the policy referred it, have the board approve it."""
    status = gov.governance.SubmitDataRequest(request or data_request(), metadata=md)
    if status.state == pb.REQUEST_STATE_AWAITING_REVIEW:
        status = gov.review.RecordDecision(
            pb.RecordDecisionRequest(request_id=status.request_id, outcome=pb.OUTCOME_APPROVE, reason="fine"),
            metadata=gov.board(),
        )
        status = gov.governance.GetDecision(pb.GetDecisionRequest(request_id=status.request_id), metadata=md)
    assert status.state == pb.REQUEST_STATE_APPROVED, status.policy_decision.reasons
    return status.grant


def fetch(gov: Running, token: str, request: pb.FetchDataRequest | None = None) -> list[pb.DataChunk]:
    return list(gov.data.FetchData(request or pb.FetchDataRequest(), metadata=holder_bearer(gov, token)))


def holder_bearer(gov: Running, grant: str) -> tuple:
    """The grant with a token of the organisation it names, as its holder presents it (a forged
    grant that names none goes alone)."""
    try:
        body = grant.split(".")[1]
        subject = str(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["sub"])
    except (IndexError, ValueError, KeyError, TypeError):
        return bearer(grant)
    return grant_bearer(grant, gov.node.credentials.issue_org_token(subject or "org-none"))
