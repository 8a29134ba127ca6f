"""A node whose disk turns read-only while it serves (as ext4 does after an I/O error, with
errors=remount-ro) refuses every write with UNAVAILABLE in plain words, keeps serving, and loses
nothing it acknowledged: after the disk is repaired, the database holds exactly what was
acknowledged before and nothing of the refused writes.

The disk is a small ext4 image on a loop device, turned read-only by ext4's own error path
(/sys/fs/ext4/<dev>/trigger_fs_error), so the kernel refuses the node's open files too: no file
mode (which root ignores) is involved. Root only; skipped where mounting is refused.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from coopfed.node.client import bearer
from coopfed.node.decisionlog import verify
from coopfed.node.runtime import init_node
from coopfed.node.settings import load_settings
from coopfed.node.storage import SqliteStore
from coopfed.node.storage.governance_sqlite import SqliteGovernanceStore
from coopfed.v1 import common_pb2, member_pb2, member_pb2_grpc
from tests.node.conftest import POLICIES

pytestmark = pytest.mark.integration

HH = 1800
READINGS = 96


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True)


@contextmanager
def ext4_disk(folder: Path) -> Iterator[Path]:
    """A 32 MiB ext4 file system mounted at `folder` with errors=remount-ro."""
    image = folder.with_suffix(".img")
    folder.mkdir(parents=True)
    with image.open("wb") as f:
        f.truncate(32 << 20)
    made = _run("mkfs.ext4", "-q", "-F", str(image))
    if (
        made.returncode != 0
        or _run("mount", "-o", "loop,errors=remount-ro", str(image), str(folder)).returncode
    ):
        pytest.skip("cannot mount an ext4 image on a loop device here")
    try:
        yield folder
    finally:
        _run("umount", str(folder))


def fail_disk(folder: Path) -> None:
    """Make ext4 meet an error on the disk at `folder`: it remounts read-only at once, open files too."""
    device = Path(_run("findmnt", "-n", "-o", "SOURCE", str(folder)).stdout.strip()).name
    (Path("/sys/fs/ext4") / device / "trigger_fs_error").write_text("coopfed test: disk failed\n")
    with pytest.raises(OSError, match="Read-only file system"):
        (folder / "probe").write_text("")


def repair_disk(folder: Path) -> None:
    """Unmount, check and mount the disk again, writable (as an operator would after the fault)."""
    image = folder.with_suffix(".img")
    assert _run("umount", str(folder)).returncode == 0
    _run("e2fsck", "-f", "-y", str(image))  # exit status 1: errors corrected
    assert _run("mount", "-o", "loop", str(image), str(folder)).returncode == 0


def _serve(config: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "coopfed.node.cli", "node", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    assert "serving on port" in line, line
    return proc, f"127.0.0.1:{line.split()[-1]}"


def _readings(first: int) -> Iterator[member_pb2.ReadingBatch]:
    yield member_pb2.ReadingBatch(
        dataset="demand",
        period_start_unix=list(range(first, first + READINGS * HH, HH)),
        kwh=[0.25] * READINGS,
    )


def _refused(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value


def test_a_disk_gone_read_only_refuses_writes_as_unavailable_and_half_stores_nothing(tmp_path: Path) -> None:
    with ext4_disk(tmp_path / "disk") as disk:
        config = init_node(disk / "node", node_id="coop-a", name="a", listen="127.0.0.1:0", policies=POLICIES)
        proc, address = _serve(config)
        try:
            with grpc.insecure_channel(address) as channel:
                stub = member_pb2_grpc.MemberServiceStub(channel)
                joined = stub.Register(member_pb2.RegisterRequest(display_name="Ada"))
                md = bearer(joined.token)
                first = (int(time.time()) // HH - 4 * READINGS) * HH
                acknowledged = stub.UploadReadings(_readings(first), metadata=md, timeout=30).inserted
                history = len(
                    stub.ListConsentHistory(member_pb2.ListConsentHistoryRequest(), metadata=md).records
                )
                fail_disk(disk)
                writes = {
                    "upload": lambda: stub.UploadReadings(
                        _readings(first + READINGS * HH), metadata=md, timeout=30
                    ),
                    "register": lambda: stub.Register(
                        member_pb2.RegisterRequest(display_name="Bo"), timeout=30
                    ),
                    "consent": lambda: stub.SetConsent(
                        member_pb2.SetConsentRequest(
                            settings=member_pb2.ConsentSettings(level=common_pb2.CONSENT_LEVEL_GREEN)
                        ),
                        metadata=md,
                        timeout=30,
                    ),
                    "erase": lambda: stub.EraseMe(
                        member_pb2.EraseRequest(confirm_member_id=joined.member_id), metadata=md, timeout=30
                    ),
                }
                for what, write in writes.items():
                    error = _refused(write)
                    assert error.code() is grpc.StatusCode.UNAVAILABLE, (what, error.details())
                    assert "database" in error.details(), (what, error.details())
                    assert "Traceback" not in error.details()
                    assert "sqlite" not in error.details().lower()
                assert proc.poll() is None, "the node died of a read-only disk"
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
        repair_disk(disk)
        with SqliteStore(load_settings(config).path("node.db"), create=False) as store:
            kept = sum(batch.periods.size for batch in store.iter_readings(joined.member_id))
            assert (kept, acknowledged) == (READINGS, READINGS)  # the acknowledged, none of the refused
            assert len(store.consent_history(joined.member_id)) == history
            assert store.get_member(joined.member_id).erased_at is None
            assert [m.display_name for m in store.applicants()] == ["Ada"]
            log = list(SqliteGovernanceStore(store).decision_log())
        assert verify(log).ok
        assert not any(json.loads(e)["path"].endswith("erase") for e in log)
