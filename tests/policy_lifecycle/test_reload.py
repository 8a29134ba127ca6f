"""A node on a signed bundle: it starts only on what the board signed and reloads without restart."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from coopfed.node.admin import ask
from coopfed.node.cli import main
from coopfed.node.policy.archive import write_archive
from coopfed.node.policy.boardkeys import BoardSigningKey, public_pem
from coopfed.node.policy.bundle import BundleError, BundleInfo, build_bundle, next_serial, read_archive
from coopfed.node.runtime import Node, init_node, open_node
from coopfed.node.settings import load_settings
from coopfed.v1 import admin_pb2

from ..node.conftest import POLICIES, running_node

pytestmark = pytest.mark.integration

RESEARCH = ("demand", "third_party", "dpv:CommercialResearch")
GREEN = {"level": "green", "persona": "", "choices": {}}


def _env(
    folder: Path, board: list[BoardSigningKey], *, required: int = 1, watch: bool = True
) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    keys = []
    for n, key in enumerate(board):
        (folder / f"board-{n}.pub").write_bytes(public_pem(key.public_key))
        keys.append(f"board-{n}.pub")
    return {
        "COOPFED_POLICY__BUNDLE": "bundle.tar.gz",
        "COOPFED_POLICY__BOARD_KEYS": ",".join(keys),
        "COOPFED_POLICY__SIGNATURES_REQUIRED": str(required),
        "COOPFED_POLICY__WATCH": "true" if watch else "false",
    }


def _publish(policies: Path, target: Path, keys: list[BoardSigningKey]) -> BundleInfo:
    """Build beside the target and rename over it, as a publisher should."""
    staged = build_bundle(policies, target.with_name("staged.tar.gz"), keys, serial=next_serial(target))
    os.replace(staged.path, target)
    return staged


def _research_allowed(policies: Path) -> Path:
    data = json.loads((policies / "data.json").read_text())
    data["coop"]["aims"].append("dpv:CommercialResearch")
    (policies / "data.json").write_text(json.dumps(data))
    return policies


@contextlib.contextmanager
def _node(tmp_path: Path, board: list[BoardSigningKey], **kw: object) -> Iterator[tuple[Node, BundleInfo]]:
    folder = tmp_path / "node"
    env = _env(folder, board, **kw)  # type: ignore[arg-type]
    first = _publish(POLICIES, folder / "bundle.tar.gz", board[:1])
    with running_node(folder, env=env) as (node, _address):
        yield node, first


def _status(node: Node) -> admin_pb2.StatusResponse:
    """What the running node reports over its admin socket."""
    return ask(node.settings.base_dir, "Status", admin_pb2.StatusRequest())


def _logged_revision(node: Node, decision_id: str) -> str:
    node.decision_log.flush()
    entries = [json.loads(e) for e in node.governance.decision_log()]
    return next(e["revision"] for e in entries if e["decision_id"] == decision_id)


def test_a_new_signed_bundle_is_picked_up_and_every_decision_names_its_revision(
    tmp_path: Path, board: list[BoardSigningKey], policies: Path
) -> None:
    with _node(tmp_path, board) as (node, first):
        assert node.policy.revision == first.revision
        before, before_id = node.consent.logged(GREEN, *RESEARCH)
        assert before.allowed is False
        second = _publish(_research_allowed(policies), node.settings.path("bundle.tar.gz"), board[1:2])
        outcome = node.policy.reloader.wait_for(1)
        assert outcome.ok, outcome.reason
        assert outcome.signers == (board[1].kid,)
        assert node.policy.revision == second.revision == outcome.revision
        assert "dpv:CommercialResearch" in node.policy_data["coop"]["aims"]
        after, after_id = node.consent.logged(GREEN, *RESEARCH)
        assert after.allowed is True
        assert _logged_revision(node, before_id) == first.revision
        assert _logged_revision(node, after_id) == second.revision
        status = _status(node)
        assert status.revision == second.revision
        assert status.last_reload.revision == second.revision


def test_a_tampered_bundle_is_refused_and_the_node_keeps_its_revision(
    tmp_path: Path, board: list[BoardSigningKey]
) -> None:
    with _node(tmp_path, board) as (node, first):
        path = node.settings.path("bundle.tar.gz")
        files = read_archive(path)
        files["data.json"] = files["data.json"].replace(b'"k_min": 5', b'"k_min": 1')
        write_archive(path, files)
        outcome = node.policy.reloader.wait_for(1)
        assert not outcome.ok
        assert "data.json: digest mismatch" in outcome.reason
        assert node.policy.revision == first.revision
        assert node.consent.logged(GREEN, *RESEARCH)[0].revision == first.revision
        status = _status(node)
        assert "digest mismatch" in status.last_reload.reason
        assert status.revision == first.revision


def test_a_signed_bundle_that_does_not_compile_is_refused(
    tmp_path: Path, board: list[BoardSigningKey], policies: Path
) -> None:
    (policies / "consent" / "broken.rego").write_text("package coopfed.broken\n\nx := if {\n")
    with _node(tmp_path, board) as (node, first):
        _publish(policies, node.settings.path("bundle.tar.gz"), board[:1])
        outcome = node.policy.reloader.wait_for(1)
        assert not outcome.ok
        assert "compiling" in outcome.reason
        assert node.policy.revision == first.revision


def test_the_reload_command_reports_the_outcome(
    tmp_path: Path,
    board: list[BoardSigningKey],
    policies: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with _node(tmp_path, board, watch=False) as (node, first):
        for name, value in _env(tmp_path / "node", board, watch=False).items():
            monkeypatch.setenv(name, value)  # the operator's shell configures the node as its service does
        config = str(node.settings.base_dir / "coopfed.toml")
        second = _publish(_research_allowed(policies), node.settings.path("bundle.tar.gz"), board[:1])
        assert node.policy.revision == first.revision  # not watched: nothing happens by itself
        assert main(["policy", "reload", "--config", config]) == 0
        assert node.policy.revision == second.revision
        assert second.revision in capsys.readouterr().out
        node.settings.path("bundle.tar.gz").write_bytes(b"half a bundle")
        assert main(["policy", "reload", "--config", config]) == 1
        out = capsys.readouterr().out
        assert "refused" in out
        assert second.revision in out  # the revision it keeps


def test_a_node_will_not_start_on_a_bundle_the_board_did_not_sign_enough(
    tmp_path: Path, board: list[BoardSigningKey]
) -> None:
    folder = tmp_path / "node"
    env = _env(folder, board, required=2)
    _publish(POLICIES, folder / "bundle.tar.gz", board[:1])
    config = init_node(folder, node_id="coop-a", name="A", listen="127.0.0.1:0", policies=POLICIES)
    with pytest.raises(BundleError, match="from 1 board key"), open_node(load_settings(config, environ=env)):
        pass
    no_keys = {**env, "COOPFED_POLICY__BOARD_KEYS": ""}
    with pytest.raises(BundleError, match="no board_keys"), open_node(load_settings(config, environ=no_keys)):
        pass
