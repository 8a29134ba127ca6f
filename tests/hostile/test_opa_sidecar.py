"""Attacks on a node's real OPA sidecar: a local process without the node's token tries to read
and rewrite policy (refused, 401, nothing changes), and an authenticated writer swaps policy and
data behind the node's back (the node refuses to decide rather than answer from the swap)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import requests

from coopfed.node.policy.errors import PolicyRevisionMismatch
from coopfed.node.policy.opa import REVISION_ROOT, OpaEngine
from coopfed.node.policy.sidecar import OpaSidecar
from coopfed.node.runtime import Node
from coopfed.v1 import common_pb2, member_pb2, member_pb2_grpc
from tests.node.conftest import Member, running_node
from tests.policy.cases import question

pytestmark = pytest.mark.integration
PERMISSIVE = 'package coopfed.consent\n\ndecision := {"allowed": true, "reasons": ["anything goes"]}\n'
GREEN = member_pb2.ConsentSettings(level=common_pb2.CONSENT_LEVEL_GREEN)
RED = member_pb2.ConsentSettings(level=common_pb2.CONSENT_LEVEL_RED)


@pytest.fixture
def node(tmp_path: Path, opa_binary: str) -> Iterator[tuple[Node, str]]:
    env = {"COOPFED_POLICY__ENGINE": "opa", "COOPFED_POLICY__OPA_BINARY": opa_binary}
    with running_node(tmp_path / "node", env=env) as running:
        yield running


def _sidecar(node: Node) -> OpaSidecar:
    with node.policy.pinned() as engine:
        assert isinstance(engine, OpaEngine)
        assert engine.sidecar is not None
        return engine.sidecar


def _consent_module(url: str, headers: dict[str, str]) -> tuple[str, str]:
    """The id and source of the module that holds package coopfed.consent."""
    listed = requests.get(f"{url}/v1/policies", headers=headers, timeout=10).json()["result"]
    return next((p["id"], p["raw"]) for p in listed if "\npackage coopfed.consent\n" in p["raw"])


@pytest.mark.parametrize("token", [None, "", "guessed-token", "Bearer"])
def test_a_local_process_without_the_token_is_refused(node: tuple[Node, str], token: str | None) -> None:
    sidecar = _sidecar(node[0])
    owner = {"Authorization": f"Bearer {sidecar.token}"}
    module_id, before = _consent_module(sidecar.url, owner)
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    attempts = [
        requests.put(f"{sidecar.url}/v1/policies/{module_id}", data=PERMISSIVE, headers=headers, timeout=10),
        requests.put(f"{sidecar.url}/v1/policies/backdoor", data=PERMISSIVE, headers=headers, timeout=10),
        requests.put(f"{sidecar.url}/v1/data", json={}, headers=headers, timeout=10),
        requests.get(f"{sidecar.url}/v1/data", headers=headers, timeout=10),
        requests.get(f"{sidecar.url}/v1/policies", headers=headers, timeout=10),
        requests.delete(f"{sidecar.url}/v1/policies/system/authz", headers=headers, timeout=10),
        requests.post(f"{sidecar.url}/v1/query", json={"query": "x := 1"}, headers=headers, timeout=10),
    ]
    assert [a.status_code for a in attempts] == [401] * len(attempts)
    assert all("personas" not in a.text for a in attempts)  # no policy data leaked
    assert _consent_module(sidecar.url, owner) == (module_id, before)
    # The node still decides, on the revision it loaded.
    decision, _ = node[0].consent.logged(
        question("red")["profile"], "demand", "coop_to_coop", "dpv:ServiceProvision"
    )
    assert decision.allowed is False


def test_the_token_is_in_no_process_list_file_or_log(node: tuple[Node, str]) -> None:
    sidecar = _sidecar(node[0])
    assert sidecar.pid is not None
    secret = sidecar.token.encode()
    assert len(sidecar.token) >= 40
    assert secret not in Path(f"/proc/{sidecar.pid}/cmdline").read_bytes()
    assert secret not in Path(f"/proc/{sidecar.pid}/environ").read_bytes()  # only its SHA-256
    assert not [p for p in node[0].settings.base_dir.rglob("*") if p.is_file() and secret in p.read_bytes()]
    assert secret not in Path(sidecar._log.name).read_bytes()  # type: ignore[union-attr]


def _swap(sidecar: OpaSidecar, *, fact: str | None) -> None:
    """As an authenticated writer: permissive consent, other data, and (optionally) a forged fact."""
    owner = {"Authorization": f"Bearer {sidecar.token}"}
    module_id, _ = _consent_module(sidecar.url, owner)
    data = requests.get(f"{sidecar.url}/v1/data/coop", headers=owner, timeout=10).json()["result"]
    swapped = {"coop": {**data, "terms_version": "attacker"}}
    if fact is not None:
        swapped[REVISION_ROOT] = {"revision": fact}
    put = requests.put(f"{sidecar.url}/v1/policies/{module_id}", data=PERMISSIVE, headers=owner, timeout=10)
    assert put.status_code == 200
    assert requests.put(f"{sidecar.url}/v1/data", json=swapped, headers=owner, timeout=10).status_code == 204


@pytest.mark.parametrize("fact", [None, "0" * 64], ids=["fact-dropped", "other-revision"])
def test_a_policy_swapped_behind_the_node_is_not_used(node: tuple[Node, str], fact: str | None) -> None:
    running, address = node
    with grpc.insecure_channel(address) as channel:
        stub = member_pb2_grpc.MemberServiceStub(channel)
        member = Member(stub, "Ada")
        stub.SetConsent(member_pb2.SetConsentRequest(settings=RED), metadata=member.md)  # works before
        _swap(_sidecar(running), fact=fact)
        with pytest.raises(grpc.RpcError) as refused:
            stub.SetConsent(member_pb2.SetConsentRequest(settings=GREEN), metadata=member.md)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert running.policy.revision in refused.value.details()
    assert "refusing to decide" in refused.value.details()
    red = question("red")
    with pytest.raises(PolicyRevisionMismatch):
        running.policy.evaluate("coopfed/consent/decision", red)  # the swap would say allowed
    with pytest.raises(PolicyRevisionMismatch):
        running.policy.evaluate("coopfed/governance/decision", {"request": {}})
    assert json.dumps(running.policy.data["coop"]).find("attacker") == -1  # the node's own view holds
