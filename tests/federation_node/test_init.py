"""`node init` makes the TLS identity and federation state; plaintext between peers is loopback only."""

from __future__ import annotations

import asyncio
import contextlib
import stat
import tomllib
from pathlib import Path

import pytest

from coopfed.federation.tls import cert_node_id
from coopfed.node import cli
from coopfed.node.errors import FailedPrecondition, InvalidArgument
from coopfed.node.federation.context import default_peer_listen, load_tls
from coopfed.node.model import ConsentLevel, ConsentSettings
from coopfed.node.runtime import init_node, open_node
from coopfed.node.server import NodeServer
from coopfed.node.settings import load_settings

from .conftest import POLICIES, YEAR_END, grantee_of, populate, running
from .test_key_rotation import ASK


def test_init_creates_tls_identity_and_peers_file(tmp_path: Path) -> None:
    argv = [
        "node",
        "init",
        "--dir",
        str(tmp_path),
        "--id",
        "riverside.coop.example",
        "--listen",
        "0.0.0.0:7000",
    ]
    assert cli.main([*argv, "--policies", str(POLICIES)]) == 0
    config = tomllib.loads((tmp_path / "coopfed.toml").read_text())
    assert config["federation"]["listen"] == "0.0.0.0:7001"
    assert config["federation"]["plaintext"] is False
    settings = load_settings(tmp_path / "coopfed.toml")
    identity = load_tls(settings)
    assert cert_node_id(identity.cert_pem) == "riverside.coop.example"
    assert stat.S_IMODE(settings.path(settings.tls.key).stat().st_mode) == 0o600
    with open_node(settings) as node:  # advertised as the node id when listening on every address
        assert node.federation.state.peers() == {}
        assert node.federation.advertised() == {
            "public": "riverside.coop.example:7000",
            "peer": "riverside.coop.example:7001",
        }


@pytest.mark.parametrize("bad", ["Coop", "coop_b", "-coop", "coop..b", "coop/b", ""])
def test_node_ids_must_be_dns_names(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidArgument, match="DNS-style"):
        init_node(tmp_path, node_id=bad, name="x", listen="127.0.0.1:0", policies=POLICIES)
    assert not (tmp_path / "coopfed.toml").exists()


def test_peer_port_defaults_next_to_the_public_one() -> None:
    assert default_peer_listen("127.0.0.1:50051") == "127.0.0.1:50052"
    assert default_peer_listen("[::1]:0") == "[::1]:0"


def test_a_certificate_for_another_node_is_refused(tmp_path: Path) -> None:
    config = init_node(tmp_path, node_id="coop-a", name="A", listen="127.0.0.1:0", policies=POLICIES)
    text = config.read_text().replace('id = "coop-a"', 'id = "coop-b"')
    config.write_text(text)
    with pytest.raises(FailedPrecondition, match="made out to 'coop-a'"), open_node(load_settings(config)):
        pass


@pytest.mark.integration
def test_plaintext_peers_work_on_loopback_only(tmp_path: Path) -> None:
    plain = {"COOPFED_FEDERATION__PLAINTEXT": "true"}
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(running(tmp_path / "a", "coop-a", POLICIES, plain))
        b = stack.enter_context(running(tmp_path / "b", "coop-b", POLICIES, plain))
        populate(b.node, [ConsentSettings(level=ConsentLevel.GREEN)] * 5, last_day_members=5)
        grantee_of(a.node).pin(asyncio.run(grantee_of(a.node).preview_join(b.public, plaintext=True)))
        grantee_of(b.node).pin(asyncio.run(grantee_of(b.node).preview_join(a.public, plaintext=True)))
        held, _ = asyncio.run(grantee_of(a.node).obtain_grant("coop-b", ASK))
        result = asyncio.run(grantee_of(a.node).fetch_aggregates(held.jti))
        assert result.series["demand"].periods[-1] == YEAR_END - 1800
    config = init_node(tmp_path / "c", node_id="coop-c", name="C", listen="127.0.0.1:0", policies=POLICIES)
    env = {**plain, "COOPFED_FEDERATION__LISTEN": "0.0.0.0:0"}
    with (
        open_node(load_settings(config, environ=env)) as node,
        pytest.raises(FailedPrecondition, match="plaintext is allowed only on loopback"),
    ):
        asyncio.run(NodeServer(node).start())
