"""Attacks on signed policy ordering: a genuine but older bundle, a replayed one, and old content
re-issued without the board's rollback quorum. The node keeps the newer policy and says why."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coopfed.node.policy.boardkeys import BoardSigningKey, public_pem
from coopfed.node.policy.bundle import BundleError, BundleInfo, build_bundle
from coopfed.node.policy.holder import PolicyHolder
from coopfed.node.policy.ordering import FLOOR_FILE
from coopfed.node.policy.reload import open_policy

POLICIES = Path(__file__).resolve().parents[2] / "policies"
NOW = int(time.time())


@pytest.fixture(scope="module")
def board() -> list[BoardSigningKey]:
    return [BoardSigningKey.generate() for _ in range(3)]


@pytest.fixture
def revisions(tmp_path: Path) -> tuple[Path, Path]:
    """Two policy folders: the repository's (A) and one whose k is higher (B)."""
    a = Path(shutil.copytree(POLICIES, tmp_path / "a"))
    b = Path(shutil.copytree(POLICIES, tmp_path / "b"))
    data = json.loads((b / "data.json").read_text())
    data["coop"]["terms_version"] = "B"
    (b / "data.json").write_text(json.dumps(data))
    return a, b


@pytest.fixture
def folder(tmp_path: Path, board: list[BoardSigningKey]) -> Path:
    node = tmp_path / "node"
    node.mkdir()
    for n, key in enumerate(board):
        (node / f"board-{n}.pub").write_bytes(public_pem(key.public_key))
    return node


def publish(folder: Path, policies: Path, keys: list[BoardSigningKey], serial: int, **kw) -> BundleInfo:
    """Build beside the node's bundle and rename over it, as a publisher does."""
    staged = build_bundle(policies, folder / "staged.tar.gz", keys, serial=serial, **kw)
    os.replace(staged.path, folder / "bundle.tar.gz")
    return staged


@contextlib.contextmanager
def node_policy(folder: Path) -> Iterator[PolicyHolder]:
    with open_policy(
        kind="embedded", policy_dir=POLICIES, bundle=folder / "bundle.tar.gz",
        board_keys=sorted(folder.glob("board-*.pub")), threshold=1, scope="coopfed-policy",
        state_dir=folder, watch=False,
    ) as holder:  # fmt: skip
        yield holder


def test_an_older_signed_bundle_is_refused_on_reload(folder, revisions, board) -> None:
    a, b = revisions
    newer = publish(folder, b, board[:1], serial=2)
    with node_policy(folder) as holder:
        older = publish(folder, a, board[:1], serial=1)  # genuinely signed, by the same key
        outcome = holder.reloader.reload()
        assert not outcome.ok
        assert outcome.offered == older.revision
        assert "serial 1 is not newer than serial 2" in outcome.reason
        assert holder.revision == newer.revision
    assert json.loads((folder / FLOOR_FILE).read_text())["serial"] == 2


def test_an_older_signed_bundle_is_refused_at_start(folder, revisions, board) -> None:
    a, b = revisions
    publish(folder, b, board[:1], serial=5)
    with node_policy(folder):
        pass
    publish(folder, a, board[:1], serial=4)  # swapped in while the node was down
    with pytest.raises(BundleError, match="serial 4 is not newer than serial 5"), node_policy(folder):
        pass


def test_a_replayed_bundle_signed_earlier_is_refused(folder, revisions, board) -> None:
    a, b = revisions
    publish(folder, a, board[:1], serial=2, now=NOW - 60)
    with node_policy(folder) as holder:
        running = holder.revision
        publish(folder, b, board[:1], serial=3, now=NOW - 3600)  # a higher serial, signed before
        outcome = holder.reloader.reload()
        assert not outcome.ok
        assert "replayed" in outcome.reason
        assert holder.revision == running


def test_a_bundle_signed_in_the_future_is_refused(folder, revisions, board) -> None:
    publish(folder, revisions[0], board[:1], serial=1, now=NOW + 86_400)
    with pytest.raises(BundleError, match="signed in the future"), node_policy(folder):
        pass


def test_going_back_needs_the_rollback_quorum(folder, revisions, board) -> None:
    a, b = revisions
    first = publish(folder, a, board[:1], serial=1)
    with node_policy(folder) as holder:
        publish(folder, b, board[:1], serial=2)
        assert holder.reloader.reload().ok
        # A's content again under a new serial, without saying so: refused.
        publish(folder, a, board[:1], serial=3)
        quiet = holder.reloader.reload()
        assert not quiet.ok
        assert "first accepted as serial 1" in quiet.reason
        # Marked rollback, but signed by 2 of the 3 board keys: refused.
        publish(folder, a, board[:2], serial=3, rollback=True)
        short = holder.reloader.reload()
        assert not short.ok
        assert "needs signatures from 3 board keys; this one has 2" in short.reason
        assert holder.policies.data["coop"]["terms_version"] == "B"
        # Marked rollback and signed by every board key: accepted.
        publish(folder, a, board, serial=4, rollback=True)
        back = holder.reloader.reload()
        assert back.ok, back.reason
        assert holder.revision == first.revision
    floor = json.loads((folder / FLOOR_FILE).read_text())
    assert floor["serial"] == 4
    assert floor["seen"][first.revision] == 1


def test_a_rollback_cannot_reuse_an_old_serial(folder, revisions, board) -> None:
    a, b = revisions
    publish(folder, a, board[:1], serial=1)
    with node_policy(folder) as holder:
        publish(folder, b, board[:1], serial=2)
        assert holder.reloader.reload().ok
        publish(folder, a, board, serial=1, rollback=True)  # the full quorum, an old counter
        outcome = holder.reloader.reload()
        assert not outcome.ok
        assert "not newer" in outcome.reason


def test_a_damaged_or_deleted_floor(folder, revisions, board) -> None:
    """Damaged: the node will not start (it cannot know what it accepted). The floor is 0600."""
    publish(folder, revisions[1], board[:1], serial=2)
    with node_policy(folder):
        pass
    floor = folder / FLOOR_FILE
    assert floor.stat().st_mode & 0o777 == 0o600
    floor.write_text('{"serial": ')
    with pytest.raises(BundleError, match="restore it from a backup"), node_policy(folder):
        pass
