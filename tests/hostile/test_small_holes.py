"""Smaller holes: masks with `*` over lists, a co-op name that tries to break out of the config
file, a `default` rule marked as an entrypoint, and a served node's files readable by others."""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coopfed.node.cli import main
from coopfed.node.masking import Masker, MaskRules
from coopfed.node.policy.loader import find_entrypoints
from coopfed.node.runtime import init_node
from coopfed.node.settings import NodeSection, Settings, load_settings, render_toml
from coopfed.v1 import member_pb2, member_pb2_grpc
from tests.node.conftest import POLICIES, serving

KEY = b"k" * 32


def test_masks_with_a_star_over_a_list_reach_every_element() -> None:
    event = {
        "input": {
            "meters": ["mpan-1", "mpan-2", "mpan-3"],
            "members": [{"id": "m-1", "name": "Ada"}, {"id": "m-2", "name": "Ben"}],
            "notes": ["a", "b", "c"],
        }
    }
    rules = MaskRules(
        erase=("/input/notes/*", "/input/members/*/name"),
        digest=("/input/meters/*",),
        pseudonymise=("/input/members/*/id",),
    )
    masked = Masker(rules, KEY).apply(event)
    assert masked["input"]["notes"] == []
    assert all(m.startswith("sha256:") for m in masked["input"]["meters"])
    assert [sorted(m) for m in masked["input"]["members"]] == [["id"], ["id"]]
    assert all(m["id"].startswith("pseud:") for m in masked["input"]["members"])
    notes = [f"/input/notes/{i}" for i in range(3)]
    assert masked["erased"] == sorted([*notes, "/input/members/0/name", "/input/members/1/name"])
    assert "Ada" not in repr(masked) and "mpan-1" not in repr(masked)  # noqa: PT018


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=40), node_id=st.text(max_size=20))
def test_any_name_reads_back_from_the_config_as_itself(name: str, node_id: str) -> None:
    written = Settings(node=replace(NodeSection(), name=name, id=node_id, listen=name))
    read = tomllib.loads(render_toml(written))["node"]
    assert (read["name"], read["id"], read["listen"]) == (name, node_id, name)


def test_a_name_with_a_newline_cannot_add_settings(tmp_path: Path) -> None:
    """A co-op name that closes its string and starts a section of its own stays one name."""
    name = 'Evil"\n[policy]\nengine = "opa"\nopa_url = "http://attacker"\n'
    config = init_node(tmp_path / "n", node_id="coop-x", name=name, listen="127.0.0.1:0", policies=POLICIES)
    loaded = load_settings(config, environ={})
    assert loaded.node.name == name
    assert loaded.policy.opa_url == ""


def test_a_default_rule_marked_entrypoint_is_named_by_its_rule() -> None:
    source = """package coopfed.gate

# METADATA
# entrypoint: true
default allow := false

allow if input.ok
"""
    assert find_entrypoints(source) == ["coopfed/gate/allow"]


PUBLIC = ("policies/", "tls/node.crt")  # published anyway: the policy the co-op runs, its certificate


def test_a_served_nodes_files_are_its_owners_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After a node served a member (registered, consented, uploaded, exported), nothing in its
    folder is open to group or others, with a permissive umask in force."""
    old = os.umask(0o022)
    try:
        folder = tmp_path / "node"
        config = init_node(folder, node_id="coop-m", name="Modes", listen="127.0.0.1:0", policies=POLICIES)
        with serving(config) as (_, address), grpc.insecure_channel(address) as channel:
            stub = member_pb2_grpc.MemberServiceStub(channel)
            reply = stub.Register(member_pb2.RegisterRequest(display_name="Ada"))
            md = (("authorization", f"Bearer {reply.token}"),)
            stub.GetConsent(member_pb2.GetConsentRequest(), metadata=md)
            creds = ["--credentials", str(folder / "member.json")]
            assert main(["member", "register", *creds, "--node", address, "--name", "B"]) == 0
            assert main(["member", "export", *creds, "--out", str(folder / "me.json")]) == 0
            capsys.readouterr()
            loose = _loose(folder)
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert loose == []


def _loose(folder: Path) -> list[str]:
    """Files and folders below `folder` that group or others may read or write, but public ones."""
    found = []
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix() + ("/" if path.is_dir() else "")
        if name.startswith(PUBLIC):
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            found.append(f"{name} {mode:o}")
    return found
