"""The admin service: a unix socket of mode 0600 in the node's folder, for its owner only, with
policy reload, key rotation and status; and plain words when no node is running."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from coopfed.node import cli
from coopfed.node.admin import SOCKET_NAME, ask
from coopfed.node.errors import Unavailable
from coopfed.node.runtime import Node, init_node
from coopfed.v1 import admin_pb2

from .conftest import POLICIES, running_node, serving

NOBODY = 65534
# A client of the admin service run as another local user: prints the node id it was told, or
# the gRPC status it was refused with.
_CLIENT = """
import sys, grpc
from coopfed.v1 import admin_pb2, admin_pb2_grpc
with grpc.insecure_channel("unix:" + sys.argv[1]) as channel:
    try:
        print(admin_pb2_grpc.AdminStub(channel).Status(admin_pb2.StatusRequest(), timeout=10).node_id)
    except grpc.RpcError as exc:
        print(exc.code().name, exc.details())
        sys.exit(1)
"""


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A node folder others may pass through (0711) but not read, so only the socket's own mode
    stands between another user and the admin service."""
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o711)  # noqa: S103 - the point of the test
        yield Path(tmp) / "node"


def _as_nobody(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            sys.executable,
            "-c",
            _CLIENT,
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv to act as nobody"
)
def test_the_socket_is_the_owners_only_and_another_user_cannot_connect(open_folder: Path) -> None:
    with running_node(open_folder):
        os.chmod(open_folder, 0o711)  # noqa: S103 - init made it 0700; open it to passers-by
        path = open_folder / SOCKET_NAME
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        refused = _as_nobody(path)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert refused.stdout.startswith("UNAVAILABLE"), refused.stdout
        assert ask(open_folder, "Status", admin_pb2.StatusRequest()).node_id == "coop-a"  # its owner can
        os.chmod(path, 0o666)  # noqa: S103 - the control: open to all, the same client gets in
        allowed = _as_nobody(path)
        assert allowed.stdout.strip() == "coop-a", allowed.stdout + allowed.stderr
    assert not path.exists()  # gone with the node


def test_status_says_what_the_node_runs_and_where(node: tuple[Node, str]) -> None:
    running, address = node
    status = ask(running.settings.base_dir, "Status", admin_pb2.StatusRequest())
    assert (status.node_id, status.revision, status.pid) == ("coop-a", running.policy.revision, os.getpid())
    assert f"127.0.0.1:{status.port}" == address
    assert status.active_kid == running.keys.signer.kid
    assert not status.HasField("last_reload")  # no bundle: nothing was ever reloaded


def test_a_key_rotation_through_the_socket_signs_at_once(node: tuple[Node, str]) -> None:
    running, _ = node
    before = running.keys.signer.kid
    reply = ask(running.settings.base_dir, "RotateKey", admin_pb2.RotateKeyRequest())
    assert reply.kid != before
    assert running.keys.signer.kid == reply.kid
    assert list(reply.kids) == running.keys.kids == [before, reply.kid]


def test_a_reload_on_a_node_without_a_bundle_is_refused_in_words(node: tuple[Node, str]) -> None:
    with pytest.raises(grpc.RpcError) as info:
        ask(node[0].settings.base_dir, "ReloadPolicy", admin_pb2.ReloadPolicyRequest())
    assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "nothing to reload" in info.value.details()


def test_without_a_running_node_the_cli_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "node"
    config = init_node(folder, node_id="coop-a", name="A", listen="127.0.0.1:0", policies=POLICIES)
    monkeypatch.setenv("COOPFED_POLICY__BUNDLE", "bundle.tar.gz")  # a node that would be reloadable
    assert cli.main(["policy", "reload", "--config", str(config)]) == 3
    assert "no node is running in" in capsys.readouterr().out
    monkeypatch.delenv("COOPFED_POLICY__BUNDLE")
    with pytest.raises(Unavailable, match="no node is running"):
        ask(folder, "Status", admin_pb2.StatusRequest())
    stale = socket.socket(socket.AF_UNIX)  # a socket file left by a node that was killed
    stale.bind(str(folder / SOCKET_NAME))
    stale.close()
    with pytest.raises(Unavailable, match="no node is running"):
        ask(folder, "Status", admin_pb2.StatusRequest())
    assert cli.main(["federation", "rotate-key", "--config", str(config)]) == 0
    assert "no node is running" in capsys.readouterr().out
    with serving(config) as (running, _):  # a node starting over a stale socket replaces it
        assert ask(folder, "Status", admin_pb2.StatusRequest()).active_kid == running.keys.signer.kid
        assert len(running.keys.kids) == 2
