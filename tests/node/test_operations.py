"""Node operations attacked for real: `coopfed node serve` processes fighting over a port or a
folder, a damaged database, SIGKILL, status, and backup and restore under load."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coopfed.node.client import bearer
from coopfed.node.policy import load_policies
from coopfed.node.runtime import init_node
from coopfed.node.settings import load_settings
from coopfed.node.storage import SqliteStore
from coopfed.v1 import member_pb2, member_pb2_grpc

from .conftest import POLICIES

pytestmark = pytest.mark.integration
HH = 1800
CLI = [sys.executable, "-m", "coopfed.node.cli"]


def coopfed(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it; what it printed must never be a traceback."""
    done = subprocess.run(
        [*CLI, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


def refused(done: subprocess.CompletedProcess[str]) -> str:
    """The one-line reason of a refused command (exit status 1), with any wrapping undone."""
    assert done.returncode == 1, done.stdout + done.stderr
    return " ".join((done.stdout + done.stderr).split())


@contextlib.contextmanager
def serving(config: Path, env: dict[str, str] | None = None) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`coopfed node serve` in its own process until the block ends (SIGTERM, unless killed in it)."""
    proc = subprocess.Popen(
        [*CLI, "node", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    drain: threading.Thread | None = None
    try:
        line = proc.stdout.readline()
        assert "serving on port" in line, line + proc.stdout.read()
        drain = threading.Thread(target=proc.stdout.read)  # its log must never fill the pipe
        drain.start()
        yield proc, f"127.0.0.1:{line.split()[-1]}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        if drain is not None:
            drain.join(10)
        proc.stdout.close()


def node(folder: Path, listen: str = "127.0.0.1:0") -> Path:
    return init_node(folder, node_id="ops", name="Ops co-op", listen=listen, policies=POLICIES)


def answers_health(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


# --- one server per port and per folder ---------------------------------------------------------


def test_a_second_node_on_a_taken_port_is_refused_and_the_first_keeps_serving(tmp_path: Path) -> None:
    with serving(node(tmp_path / "a")) as (_, address):
        port = address.rsplit(":", 1)[1]
        other = node(tmp_path / "b", listen=address)
        reason = refused(coopfed("node", "serve", "--config", other))
        assert f"cannot listen on {address}: address already in use" in reason
        assert "set a free port in `listen` under [node] of coopfed.toml" in reason
        # the peer port too: gRPC would otherwise share it between the two processes
        peer_on_taken = {"COOPFED_NODE__LISTEN": "127.0.0.1:0", "COOPFED_FEDERATION__LISTEN": address}
        reason = refused(coopfed("node", "serve", "--config", other, env=peer_on_taken))
        assert f"cannot listen on 127.0.0.1:{port}: address already in use" in reason
        assert "under [federation] of coopfed.toml" in reason
        assert answers_health(address)


def test_a_folder_is_served_once_and_again_at_once_after_sigkill(tmp_path: Path) -> None:
    config = node(tmp_path / "a")
    with serving(config) as (first, _):
        reason = refused(coopfed("node", "serve", "--config", config))
        assert f"already being served (process {first.pid})" in reason
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        with serving(config) as (_, again):  # the OS released the lock with the process
            assert answers_health(again)


# --- the database at start-up -------------------------------------------------------------------


def _truncate(db: Path) -> None:
    os.truncate(db, db.stat().st_size // 2)


def _garbage_header(db: Path) -> None:
    db.write_bytes(os.urandom(db.stat().st_size))


def _garbage_pages(db: Path) -> None:
    with db.open("r+b") as fh:
        fh.seek(4096)  # page 1 (the schema) intact, the tables' pages not
        fh.write(os.urandom(4096 * 8))


def _read_only(db: Path) -> None:
    db.chmod(0o444)


def _delete(db: Path) -> None:
    db.unlink()


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (_truncate, "cannot be used"),
        (_garbage_header, "cannot be used: SQLite's check found damage (file is not a database)"),
        (_garbage_pages, "cannot be used"),
        (_read_only, "is read-only"),
        (_delete, "is missing although the node's config and keys are there"),
    ],
)
def test_a_damaged_database_is_refused_and_left_as_it_is(tmp_path: Path, damage, says: str) -> None:
    config = node(tmp_path / "a")
    db = tmp_path / "a" / "node.db"
    damage(db)
    before = db.read_bytes() if db.exists() else None
    commands = [["node", "serve"], ["node", "status"]]
    if damage is not _read_only:  # a read-only database can still be backed up
        commands.append(["node", "backup", tmp_path / "copy.db"])
    for command in commands:
        reason = refused(coopfed(*command, "--config", config))
        assert f"the database {db} {says}" in reason, reason
        assert "coopfed node restore" in reason or f"chmod u+w {db}" in reason
    assert (db.read_bytes() if db.exists() else None) == before  # nothing created, nothing written
    assert not (tmp_path / "copy.db").exists()


def test_a_read_only_database_can_be_backed_up(tmp_path: Path) -> None:
    config = node(tmp_path / "a")
    (tmp_path / "a" / "node.db").chmod(0o444)
    assert coopfed("node", "backup", tmp_path / "copy.db", "--config", config).returncode == 0
    assert (tmp_path / "copy.db").stat().st_size > 0


# --- status ---------------------------------------------------------------------------------------


def test_status_says_what_an_operator_asks(tmp_path: Path) -> None:
    config = node(tmp_path / "a")
    stopped = coopfed("node", "status", "--config", config, "--json")
    assert stopped.returncode == 0, stopped.stdout
    assert (json.loads(stopped.stdout)["serving"], json.loads(stopped.stdout)["members"]) == (False, 0)
    summer = int(datetime(2024, 6, 4, 13, 0, tzinfo=UTC).timestamp())  # 14:00 in London (BST)
    with serving(config) as (proc, address), grpc.insecure_channel(address) as channel:
        stub = member_pb2_grpc.MemberServiceStub(channel)
        for name in ("Cy", "Ada", "Ben"):  # Ben, admitted, uploads
            reg = stub.Register(member_pb2.RegisterRequest(display_name=name))
            if name != "Cy":  # the board admits two; Cy waits
                with SqliteStore(tmp_path / "a" / "node.db", create=False) as store:
                    store.admit_member(reg.member_id, by="board")
        batch = member_pb2.ReadingBatch(dataset="demand", period_start_unix=[summer - HH, summer], kwh=[1, 2])
        stub.UploadReadings(iter([batch]), metadata=bearer(reg.token))
        status = json.loads(coopfed("node", "status", "--config", config, "--json").stdout)
        words = coopfed("node", "status", "--config", config)
    assert words.returncode == 0
    assert (status["serving"], status["pid"], status["address"], status["answers"]) == (
        True,
        proc.pid,
        address,
        True,
    )
    settings = load_settings(config)
    assert status["revision"] == load_policies(settings.path(settings.policy.dir)).revision
    assert (status["members"], status["applicants"], status["peers"]) == (2, 1, [])
    assert status["newest_reading_at"] == "2024-06-04T14:00:00+01:00"
    assert status["disk_bytes"] > (tmp_path / "a" / "node.db").stat().st_size
    text = " ".join(words.stdout.split())
    assert f"serving: yes, process {proc.pid} at {address}, answers health checks" in text
    assert "newest reading: 14:00-14:30 on Tuesday 4 June 2024 (BST)" in text
    assert "members: 2 admitted, 1 waiting for the board" in text
    assert "peers pinned: none" in text
    after = json.loads(coopfed("node", "status", "--config", config, "--json").stdout)
    assert (after["serving"], after["answers"]) == (False, False)


# --- backup and restore ---------------------------------------------------------------------------


def _export(stub: member_pb2_grpc.MemberServiceStub, token: str) -> dict[int, float]:
    held: dict[int, float] = {}
    for chunk in stub.ExportMyData(member_pb2.ExportRequest(), metadata=bearer(token)):
        if chunk.HasField("readings"):
            held.update(zip(chunk.readings.period_start_unix, chunk.readings.kwh, strict=True))
    return held


def test_backup_while_serving_under_uploads_restores_into_a_working_node(tmp_path: Path) -> None:
    config = node(tmp_path / "a")
    db, copy = tmp_path / "a" / "node.db", tmp_path / "backups" / "monday.db"
    copy.parent.mkdir()
    first = (int(datetime(2023, 1, 1, tzinfo=UTC).timestamp()) // HH) * HH
    per_upload = 48
    acknowledged: list[int] = []
    with serving(config) as (_, address), grpc.insecure_channel(address) as channel:
        stub = member_pb2_grpc.MemberServiceStub(channel)
        reg = stub.Register(member_pb2.RegisterRequest(display_name="Ada"))
        stop, failures = threading.Event(), []

        def upload() -> None:  # upload n is one transaction: a day of readings, all of n Wh
            n = 0
            while not stop.is_set() and n < 2000:
                start = first + n * per_upload * HH
                msg = member_pb2.ReadingBatch(
                    dataset="demand",
                    period_start_unix=list(range(start, start + per_upload * HH, HH)),
                    kwh=[n / 1000] * per_upload,
                )
                try:
                    stub.UploadReadings(iter([msg]), metadata=bearer(reg.token))
                except grpc.RpcError as exc:
                    failures.append(exc)
                    return
                acknowledged.append(n)
                n += 1

        uploader = threading.Thread(target=upload)
        uploader.start()
        while len(acknowledged) < 20 and uploader.is_alive():
            threading.Event().wait(0.05)
        before_backup = len(acknowledged)
        done = coopfed("node", "backup", copy, "--config", config)
        after_backup = len(acknowledged)
        stop.set()
        uploader.join(60)
        assert not failures
        assert done.returncode == 0, done.stdout
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        assert refused(coopfed("node", "backup", copy, "--config", config)).count("already exists")
        assert "stop that node before you restore" in refused(
            coopfed("node", "restore", copy, "--config", config)
        )
        everything = _export(stub, reg.token)
    assert len(everything) == len(acknowledged) * per_upload  # the node lost nothing meanwhile

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(8192))
    assert "is not a coopfed database" in refused(coopfed("node", "restore", garbage, "--config", config))
    restored = coopfed("node", "restore", copy, "--config", config)
    assert restored.returncode == 0, restored.stdout
    assert (tmp_path / "a" / "node.db.before-restore").stat().st_size > 0  # the old one is kept
    assert stat.S_IMODE(db.stat().st_mode) == 0o600

    with serving(config) as (_, address), grpc.insecure_channel(address) as channel:
        held = _export(member_pb2_grpc.MemberServiceStub(channel), reg.token)
    # a consistent copy: whole uploads 0..k-1, every one acknowledged before the backup began
    uploads = sorted({round(kwh * 1000) for kwh in held.values()})
    k = len(uploads)
    assert uploads == list(range(k))
    assert before_backup <= k <= after_backup + 1
    assert held == {p: kwh for p, kwh in everything.items() if round(kwh * 1000) < k}


def test_a_lost_database_comes_back_from_its_backup(tmp_path: Path) -> None:
    config = node(tmp_path / "a")
    db, copy = tmp_path / "a" / "node.db", tmp_path / "copy.db"
    assert coopfed("node", "backup", copy, "--config", config).returncode == 0
    db.unlink()
    assert "is missing" in refused(coopfed("node", "serve", "--config", config))
    restored = coopfed("node", "restore", copy, "--config", config)
    assert restored.returncode == 0, restored.stdout
    assert "kept as" not in restored.stdout  # there was nothing to keep
    with serving(config) as (_, address):
        assert answers_health(address)


# --- a node on PostgreSQL -----------------------------------------------------------------------


def test_a_node_on_postgresql_keeps_all_its_state_there(tmp_path: Path) -> None:
    """`[storage] url` in coopfed.toml: members, readings, status and a ballot, with no SQLite file."""
    from coopfed.node.client import Credentials

    from ..ballots.conftest import RULES, edit_data
    from ..pgserver import fresh_database

    url = fresh_database()
    config = node(tmp_path / "a")
    config.write_text(config.read_text().replace('url = ""', f'url = "{url}"', 1))
    (tmp_path / "a" / "node.db").unlink()  # nothing may read or write the SQLite file
    edit_data(tmp_path / "a" / "policies", {"ballots": RULES})  # a ballot may last seconds
    board, summer = tmp_path / "board.json", int(datetime(2024, 6, 4, 13, 0, tzinfo=UTC).timestamp())
    with serving(config) as (_, address), grpc.insecure_channel(address) as channel:
        made = coopfed("review", "token", "--name", "ada", "--config", config, "--node", address,
                       "--credentials", board)  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr
        stub = member_pb2_grpc.MemberServiceStub(channel)
        voters = {}
        for name in ("Cy", "Ada", "Ben"):  # Cy waits for the board; Ben uploads
            reg = stub.Register(member_pb2.RegisterRequest(display_name=name))
            if name != "Cy":
                admitted = coopfed(
                    "review", "admit", reg.member_id, "--reason", "checked", "--credentials", board
                )
                assert admitted.returncode == 0, admitted.stdout + admitted.stderr
                voters[name] = tmp_path / f"{name}.json"
                Credentials(address, reg.member_id, reg.token).save(voters[name])
        batch = member_pb2.ReadingBatch(dataset="demand", period_start_unix=[summer - HH, summer], kwh=[1, 2])
        stub.UploadReadings(iter([batch]), metadata=bearer(reg.token))
        status = json.loads(coopfed("node", "status", "--config", config, "--json").stdout)
        assert (status["answers"], status["members"], status["applicants"]) == (True, 2, 1)
        assert (status["peers"], status["newest_reading_at"]) == ([], "2024-06-04T14:00:00+01:00")

        change = json.dumps({"governance": {"thresholds": {"approve": 65}}})
        closes = time.time() + 45  # time for the CLI to vote twice on a busy machine
        proposed = coopfed("ballot", "propose", "--title", "Approve at 65", "--explanation", "Fewer",
                           "--change", change, "--closes", datetime.fromtimestamp(closes, UTC).isoformat(),
                           "--credentials", board, "--json")  # fmt: skip
        assert proposed.returncode == 0, proposed.stdout + proposed.stderr
        ballot = json.loads(proposed.stdout)["ballot_id"]
        for creds in voters.values():
            voted = coopfed("ballot", "vote", ballot, "yes", "--credentials", creds)
            assert "Your receipt" in voted.stdout, voted.stdout + voted.stderr
        with psycopg.connect(url) as db:
            assert db.execute("SELECT count(*) FROM ballot_box").fetchone() == (2,)
        time.sleep(max(0.0, closes - time.time()) + 0.5)
        tally = coopfed("ballot", "tally", ballot, "--credentials", board)
        assert "result: passed" in tally.stdout, tally.stdout + tally.stderr
    with psycopg.connect(url) as db:  # closed: no row's transaction pairs a voter with a choice
        for table in ("ballot_voters", "ballot_box"):
            assert db.execute(f"SELECT count(DISTINCT xmin::text) FROM {table}").fetchone() == (1,)  # noqa: S608
    assert not (tmp_path / "a" / "node.db").exists()
