"""Storage faults get honest statuses from a real node on a real file system: a full disk is
RESOURCE_EXHAUSTED and stores nothing of the refused upload, a database on a read-only disk is
UNAVAILABLE, and a database rule broken by the node's own write is INTERNAL, without the SQL.

The disk is a small tmpfs mounted for the test (root only; skipped where mounting is refused).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from coopfed.node.client import bearer
from coopfed.node.rpc import as_coopfed_error
from coopfed.node.storage import ConstraintBroken, SqliteStore, StorageUnavailable
from coopfed.v1 import member_pb2, member_pb2_grpc
from tests.hostile.test_upload_atomicity import HH, _node, _register, stored
from tests.node.conftest import serving

pytestmark = pytest.mark.integration


@contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `folder`, unmounted afterwards."""
    folder.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip() or 'not permitted'}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _batch(first: int, n: int) -> member_pb2.ReadingBatch:
    return member_pb2.ReadingBatch(
        dataset="demand", period_start_unix=list(range(first, first + n * HH, HH)), kwh=[0.25] * n
    )


def attack_full_disk(folder: Path) -> tuple[grpc.StatusCode, int, int]:
    """Upload 2,000 readings at a time until the disk is full: the status of the refused upload,
    readings acknowledged, and readings stored (equal when nothing was half-stored)."""
    code, acknowledged = grpc.StatusCode.OK, 0
    with small_disk(folder / "disk", "3m") as disk:
        config = _node(disk / "node")
        with serving(config) as (_, address):
            member_id, token = _register(address)
            first = (int(time.time()) // HH - 200_000) * HH
            with grpc.insecure_channel(address) as channel:
                upload = member_pb2_grpc.MemberServiceStub(channel).UploadReadings
                for n in range(100):
                    try:
                        reply = upload(
                            iter([_batch(first + n * 2000 * HH, 2000)]), metadata=bearer(token), timeout=30
                        )
                    except grpc.RpcError as exc:
                        code = exc.code()
                        break
                    acknowledged += reply.inserted
        return code, acknowledged, stored(config, member_id)


def test_a_full_disk_is_resource_exhausted_and_keeps_every_acknowledged_reading(tmp_path: Path) -> None:
    code, acknowledged, kept = attack_full_disk(tmp_path)
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert acknowledged > 0
    assert kept == acknowledged


def test_a_database_on_a_read_only_disk_is_unavailable(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "4m") as disk:
        SqliteStore(disk / "node.db").close()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        with pytest.raises(StorageUnavailable) as refused:
            SqliteStore(disk / "node.db", create=False)
    error = as_coopfed_error(refused.value)
    assert error is not None
    assert error.status is grpc.StatusCode.UNAVAILABLE


def test_a_rule_broken_by_the_nodes_own_write_is_internal(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "node.db") as store:
        with pytest.raises(ConstraintBroken) as broken, store._write() as conn:
            conn.execute("INSERT INTO members (member_id) VALUES (NULL)")  # no check caught it
        assert store.profiles() == []
    error = as_coopfed_error(broken.value)
    assert error is not None
    assert error.status is grpc.StatusCode.INTERNAL
