"""A real node on a signed bundle, serving gRPC, with admitted members, an applicant and the board."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from coopfed.node.client import bearer
from coopfed.node.credentials import issue_board_token
from coopfed.node.model import ConsentSettings
from coopfed.node.policy.boardkeys import BoardSigningKey, public_pem
from coopfed.node.policy.bundle import BundleInfo, build_bundle, next_serial
from coopfed.node.runtime import Node, init_node
from coopfed.v1 import ballot_pb2_grpc

from ..node.conftest import POLICIES, serving

VOTING_SECONDS = 6
RULES = {  # short ballots for tests; the shipped rules keep a ballot open for days
    "petition_signatures": 2, "quorum_percent": 50, "majority_percent": 50,
    "voting_days": VOTING_SECONDS / 86_400, "min_voting_hours": 0,
}  # fmt: skip
MEMBERS = ("alice", "bob", "carol")


@dataclass
class Coop:
    node: Node
    address: str
    folder: Path
    policies: Path  # the board's working copy of the node's policies
    board_key: BoardSigningKey
    channel: grpc.Channel

    @property
    def stub(self) -> ballot_pb2_grpc.BallotServiceStub:
        return ballot_pb2_grpc.BallotServiceStub(self.channel)

    def member(self, member_id: str) -> tuple[tuple[str, str], ...]:
        return bearer(self.node.credentials.issue_member_token(member_id))

    @property
    def board(self) -> tuple[tuple[str, str], ...]:
        return bearer(issue_board_token(self.node.node_id, self.node.keys, "tester", 3600))

    def publish(self, **kw: object) -> BundleInfo:
        """Sign the working copy and rename it over the node's bundle, as a publisher does."""
        target = self.folder / "bundle.tar.gz"
        staged = build_bundle(
            self.policies, self.folder / "staged.tar.gz", [self.board_key], serial=next_serial(target), **kw
        )  # type: ignore[arg-type]
        os.replace(staged.path, target)
        return staged


def edit_data(folder: Path, change: dict) -> None:  # type: ignore[type-arg]
    from coopfed.node.policy.data_changes import merge_patch

    path = folder / "data.json"
    path.write_text(json.dumps(merge_patch(json.loads(path.read_text()), change), indent=2))


@pytest.fixture
def coop(tmp_path: Path) -> Iterator[Coop]:
    folder = tmp_path / "coop"
    config = init_node(folder, node_id="coop", name="Ballot Co-op", listen="127.0.0.1:0", policies=POLICIES)
    edit_data(folder / "policies", {"ballots": RULES})
    key = BoardSigningKey.generate()
    (folder / "board.pub").write_bytes(public_pem(key.public_key))
    work = Path(tmp_path / "work")
    work.mkdir()
    import shutil

    shutil.copytree(folder / "policies", work / "policies")
    first = build_bundle(work / "policies", folder / "bundle.tar.gz", [key], serial=1)
    assert first.serial == 1
    env = {
        "COOPFED_POLICY__BUNDLE": "bundle.tar.gz", "COOPFED_POLICY__BOARD_KEYS": "board.pub",
        "COOPFED_POLICY__WATCH": "false", "COOPFED_STORAGE__SYNCHRONOUS": "NORMAL",
    }  # fmt: skip
    with serving(config, env) as (node, address), grpc.insecure_channel(address) as channel:
        for m in MEMBERS:
            node.store.create_member(m, m, ConsentSettings(), admitted_by="test")
        node.store.create_member("dan", "dan", ConsentSettings())  # an applicant
        yield Coop(node, address, folder, work / "policies", key, channel)
