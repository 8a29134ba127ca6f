"""`node init` writes the co-op's own policies from the packaged defaults; a node's secrets are 0600."""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path

import grpc
import pytest

from coopfed.node import cli
from coopfed.node.errors import AlreadyExists
from coopfed.node.policy import PolicyError, load_policies
from coopfed.node.policy.defaults import default_policies, write_coop_policies
from coopfed.node.runtime import init_node
from coopfed.v1 import member_pb2, member_pb2_grpc

from ..node.conftest import POLICIES, running_node, serving


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def policy_files(folder: Path) -> set[str]:
    """A policy folder's own files (the packaged defaults also hold what makes them a package)."""
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    return {f for f in files if f != "__init__.py" and not f.startswith("__pycache__/")}


def test_a_coops_copy_names_the_coop_and_keeps_the_test_suites(tmp_path: Path) -> None:
    own = write_coop_policies(tmp_path / "policies", coop_id="riverside", name="Riverside Energy Co-op")
    assert policy_files(own) == policy_files(default_policies())  # *_test.rego and README too
    assert not (own / "__init__.py").exists()
    data = json.loads((own / "data.json").read_text())
    assert (data["coop"]["id"], data["coop"]["name"]) == ("riverside", "Riverside Energy Co-op")
    defaults = json.loads((POLICIES / "data.json").read_text())
    assert data == {**defaults, "coop": {**defaults["coop"], "id": "riverside", "name": data["coop"]["name"]}}
    assert load_policies(own).modules == load_policies(POLICIES).modules


def test_a_folder_that_is_no_policy_set_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(PolicyError, match="no Rego modules"):
        init_node(tmp_path / "n", node_id="c", name="C", listen="127.0.0.1:0", policies=tmp_path / "empty")
    assert not (tmp_path / "n" / "policies").exists()
    assert not (tmp_path / "n" / "coopfed.toml").exists()


def test_node_init_from_an_empty_folder_writes_the_coops_own_policies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no policies/ here: the defaults come from the package
    assert cli.main(["node", "init", "--dir", "node", "--id", "fellside", "--name", "Fellside Power"]) == 0
    assert "created node fellside" in capsys.readouterr().out
    config = tomllib.loads((tmp_path / "node" / "coopfed.toml").read_text())
    assert config["policy"]["dir"] == "policies"  # relative: the folder can move
    data = json.loads((tmp_path / "node" / "policies" / "data.json").read_text())
    assert data["coop"]["name"] == "Fellside Power"


def test_node_init_copies_another_folder_when_asked(tmp_path: Path) -> None:
    theirs = write_coop_policies(tmp_path / "theirs", coop_id="x", name="X")
    (theirs / "extra").mkdir()
    (theirs / "extra" / "data.json").write_text('{"note": "kept"}')
    init_node(tmp_path / "n", node_id="coop-n", name="N", listen="127.0.0.1:0", policies=theirs)
    own = tmp_path / "n" / "policies"
    assert load_policies(own).data["extra"] == {"note": "kept"}
    assert load_policies(own).data["coop"]["id"] == "coop-n"
    assert json.loads((theirs / "data.json").read_text())["coop"]["id"] == "x"  # the source is untouched


def test_policies_already_in_the_folder_are_used_only_when_named(tmp_path: Path) -> None:
    folder = tmp_path / "n"
    prepared = write_coop_policies(folder / "policies", coop_id="prepared", name="P")
    with pytest.raises(AlreadyExists, match="--policies"):
        init_node(folder, node_id="coop-n", name="N", listen="127.0.0.1:0")
    assert not (folder / "coopfed.toml").exists()
    init_node(folder, node_id="coop-n", name="N", listen="127.0.0.1:0", policies=prepared)
    assert load_policies(prepared).data["coop"]["id"] == "prepared"  # used as it is


def test_a_node_folder_and_its_secrets_are_its_owners_only(tmp_path: Path) -> None:
    folder = tmp_path / "node"
    folder.mkdir(mode=0o755)  # an existing folder is closed too
    init_node(folder, node_id="coop-m", name="M", listen="127.0.0.1:0")
    assert mode(folder) == 0o700
    secrets = [folder / "node.db", folder / "tls" / "node.key", *(folder / "keys").glob("*.pem")]
    assert len(secrets) == 3
    assert {p.name: mode(p) for p in secrets} == {p.name: 0o600 for p in secrets}

    with serving(folder / "coopfed.toml") as (_, address):
        with grpc.insecure_channel(address) as channel:
            member_pb2_grpc.MemberServiceStub(channel).Register(
                member_pb2.RegisterRequest(display_name="Ada")
            )
        served = [folder / "node.db-wal", folder / "node.db-shm", *(folder / "keys").iterdir()]
        private = {p.name: mode(p) for p in served if p.suffix != ".json"}  # keyring.json: public keys
        assert len(private) == 4, private  # wal, shm, signing key, pseudonym key
        assert private == dict.fromkeys(private, 0o600)
    assert mode(folder / "node.db") == 0o600


def test_exports_and_credentials_are_written_0600(tmp_path: Path) -> None:
    with running_node(tmp_path / "node") as (_, address):
        _export(address, tmp_path / "member")


def _export(address: str, folder: Path) -> None:
    folder.mkdir()
    creds, export = folder / "member.json", folder / "export.json"
    owner = ["--credentials", str(creds)]
    assert cli.main(["member", "register", *owner, "--node", address, "--name", "Ada"]) == 0
    assert cli.main(["member", "export", *owner, "--out", str(export)]) == 0
    assert json.loads(export.read_text())[0]["profile"]["displayName"] == "Ada"
    assert (mode(creds), mode(export)) == (0o600, 0o600)
    assert sorted(p.name for p in folder.iterdir()) == ["export.json", "member.json"]  # no temporary left
