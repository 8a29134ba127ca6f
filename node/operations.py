"""Running a node's folder: one server per folder and per port, the database checked at start,
status, backup and restore of the database while the node serves or is stopped, and moving it
from SQLite to PostgreSQL."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import arrow
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from coopfed.federation.atomic import sync_folder
from coopfed.node.admin import ask
from coopfed.node.errors import (
    AlreadyExists,
    CoopfedError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
    UsageError,
)
from coopfed.node.policy import load_policies
from coopfed.node.settings import Settings
from coopfed.node.settings import _toml_value as toml_value
from coopfed.node.storage import SchemaError, SqliteStore, StorageError, StorageUnavailable
from coopfed.node.storage import move as move_
from coopfed.node.storage.configured import open_store
from coopfed.node.storage.federation_sqlite import SqlFederationStore
from coopfed.node.storage.forecast_sqlite import SqlForecastIndex
from coopfed.node.storage.pgserver import binaries
from coopfed.node.storage.postgres import PostgresStore
from coopfed.node.storage.sqlite_conn import copy_database, existing, quick_check
from coopfed.v1 import admin_pb2

LOCK_NAME = "node.lock"
NO_PORT_SHARING = ("grpc.so_reuseport", 0)  # gRPC shares a port between processes unless told not to
HALF_HOUR = 1800


# --- one server per folder and per port --------------------------------------------------------


class FolderLock:
    """An exclusive lock on the folder's lock file, held while a process serves the folder.

    `flock` belongs to the open file: the OS releases it however the process ends, SIGKILL
    included, so a folder can be served again at once. The file notes who holds it and where.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, doing: str = "serve it") -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = serving_note(self.folder) or {}
            pid = f" (process {holder['pid']})" if "pid" in holder else ""
            raise FailedPrecondition(
                f"the node folder {self.folder} is already being served{pid}; "
                f"stop that node before you {doing}",
                code="node.locked",
            ) from None
        self._fd = fd

    def note(self, **info: Any) -> None:
        """Record who serves the folder (pid, ports) for `coopfed node status`."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, json.dumps({"pid": os.getpid(), **info}).encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the lock
            self._fd = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def serving_note(folder: Path) -> dict[str, Any] | None:
    """What the process serving the folder noted in the lock file; None when nothing serves it."""
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None  # we could take it: nobody holds it
    except BlockingIOError:
        with contextlib.suppress(ValueError):
            return json.loads(os.pread(fd, 4096, 0) or b"{}")
        return {}
    finally:
        os.close(fd)


def bind(server: grpc.aio.Server, address: str, section: str, creds: grpc.ServerCredentials | None) -> int:
    """Listen on `address`, or say plainly why not (the server must be made with NO_PORT_SHARING)."""
    try:
        return server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
    except RuntimeError:
        raise FailedPrecondition(
            f"cannot listen on {address}: {_bind_failure(address)}. Stop the program using it (perhaps "
            f"another coopfed node) or set a free port in `listen` under [{section}] of coopfed.toml",
            code="node.port_in_use",
        ) from None


def _bind_failure(address: str) -> str:
    host, _, port = address.rpartition(":")
    try:
        socket.create_server((host.strip("[]"), int(port))).close()
    except OSError as exc:
        return os.strerror(exc.errno).lower() if exc.errno else str(exc)
    except ValueError:
        return "it is not a host:port address"
    return "gRPC could not bind it"


# --- the database at start-up ------------------------------------------------------------------


def check_database(path: Path, *, writing: bool = True) -> None:
    """Refuse a database that is missing, damaged or (when `writing`) read-only, before opening it.

    Only `coopfed node init` creates a database: a node whose database was lost must not start
    on an empty one and carry on as if its members had never joined.
    """
    if not path.exists():
        raise FailedPrecondition(
            f"the database {path} is missing although the node's config and keys are there; "
            "restore it from a backup with `coopfed node restore`",
            code="storage.missing",
        )
    for what, target in (("the database", path), ("the database's folder", path.parent)):
        if writing and not _writable(target):
            raise FailedPrecondition(
                f"{what} {target} is read-only; the node writes to the database and its WAL beside it: "
                f"make it writable by the user that runs the node (chmod u+w {target})",
                code="storage.read_only",
            )
    problem = database_problem(path)
    if problem:
        raise FailedPrecondition(
            f"the database {path} cannot be used: {problem}; restore it from a backup "
            "with `coopfed node restore`",
            code="storage.corrupt",
        )


def _writable(path: Path) -> bool:
    # the owner's write bit as well: a root-run node would otherwise ignore a chmod 0444
    return os.access(path, os.W_OK) and bool(path.stat().st_mode & 0o200)


def database_problem(path: Path) -> str:
    """Why the file is not a sound coopfed database, or "" when it is one."""
    if path.stat().st_size == 0:
        return "the file is empty"
    conn = sqlite3.connect(existing(path), uri=True, timeout=30)
    try:
        problems = quick_check(conn)
        if problems:
            return "SQLite's check found damage (" + "; ".join(problems[:3]) + ")"
        tables = conn.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'schema_version'")
        return "" if tables.fetchone()[0] else "it holds no coopfed data"
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        conn.close()


# --- backup and restore ------------------------------------------------------------------------


def backup(settings: Settings, target: Path, *, force: bool = False) -> int:
    """Copy the node's database to `target` (0600) while it serves or not; return its size.

    The copy is one consistent snapshot, checked before it replaces `target` in one rename.
    A PostgreSQL store is copied by pg_dump, in its custom format (`pg_restore` reads it).
    """
    if settings.storage.url:
        return _dump(settings.storage.url, target, force=force)
    source = settings.path(settings.storage.path)
    check_database(source, writing=False)
    target = target.resolve()
    with _backup_file(target, force=force) as tmp:
        if target == source:
            raise InvalidArgument("a backup cannot overwrite the database itself", code="backup.same_file")
        conn = sqlite3.connect(existing(source), uri=True, timeout=30)
        try:
            copy_database(conn, tmp)
        finally:
            conn.close()
        problem = database_problem(tmp)
        if problem:
            raise FailedPrecondition(f"the copy failed its check: {problem}", code="backup.unsound")
    return target.stat().st_size


@contextlib.contextmanager
def _backup_file(target: Path, *, force: bool) -> Iterator[Path]:
    """A temporary file beside `target` for the block to fill and check; renamed over `target`,
    its folder synced, only when the block ends well, and removed whatever happens."""
    if target.exists() and not force:
        raise AlreadyExists(f"{target} already exists; give another name, or --force", code="backup.exists")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        yield tmp
        os.replace(tmp, target)
        sync_folder(target.parent)
    except OSError as exc:
        raise FailedPrecondition(f"cannot write {target}: {exc.strerror or exc}", code="backup.io") from None
    finally:
        tmp.unlink(missing_ok=True)


def restore(settings: Settings, backup_file: Path) -> Path | None:
    """Put a backup in place of a stopped node's database; return where the old one was kept
    (None where there was none).

    Refuses while the node serves (its lock) and refuses a file that is not a coopfed database
    this version can open. The old database and its WAL are kept, renamed, never deleted.
    """
    database = settings.path(settings.storage.path)
    if not backup_file.is_file():
        raise NotFound(f"no backup file {backup_file}", code="restore.no_file")
    if settings.storage.url:
        lock = FolderLock(settings.base_dir)
        lock.acquire(doing="restore its database")
        try:
            _pg_restore(settings.storage.url, backup_file)
        finally:
            lock.release()
        return None
    try:
        return _restore(database, backup_file, FolderLock(settings.base_dir))
    except OSError as exc:
        raise FailedPrecondition(f"cannot restore {database}: {exc}", code="restore.io") from None


def _restore(database: Path, backup_file: Path, lock: FolderLock) -> Path | None:
    with contextlib.ExitStack() as stack:
        lock.acquire(doing="restore its database")
        stack.callback(lock.release)
        tmp = database.with_name(f".{database.name}.restoring")
        tmp.unlink(missing_ok=True)
        stack.callback(tmp.unlink, missing_ok=True)
        _copy_checked(backup_file, tmp)
        kept = None
        if database.exists():
            kept = _free_name(database.with_name(f"{database.name}.before-restore"))
            for suffix in ("", "-wal"):  # SQLite pairs a database with its WAL by name
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{database}{suffix}", f"{kept}{suffix}")
        Path(f"{database}-shm").unlink(missing_ok=True)  # an index of the old WAL, no data
        os.replace(tmp, database)
        sync_folder(database.parent)
    return kept


def _copy_checked(backup_file: Path, tmp: Path) -> None:
    """Copy the backup beside the database and open it as the node would (schema migrations)."""
    refused = f"{backup_file} is not a coopfed database that can be restored"
    try:
        conn = sqlite3.connect(f"{backup_file.resolve().as_uri()}?mode=ro", uri=True)
        try:
            copy_database(conn, tmp)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise InvalidArgument(f"{refused}: {exc}", code="restore.invalid") from None
    problem = database_problem(tmp)
    if problem:
        raise InvalidArgument(f"{refused}: {problem}", code="restore.invalid")
    try:
        SqliteStore(tmp, create=False).close()
    except StorageError as exc:
        raise InvalidArgument(f"{refused}: {exc}", code="restore.invalid") from None


def _dump(url: str, target: Path, *, force: bool) -> int:
    """pg_dump of the node's database to `target` (0600), listed by pg_restore before it is renamed in."""
    target = target.resolve()
    with _backup_file(target, force=force) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        _pg_tool("pg_dump", "--format=custom", "--no-owner", f"--file={tmp}", f"--dbname={url}")
        listing = _pg_tool("pg_restore", "--list", str(tmp))
        if "TABLE DATA" not in listing or " schema_version " not in listing:
            raise FailedPrecondition("the dump holds no coopfed data", code="backup.unsound")
    return target.stat().st_size


def _pg_restore(url: str, backup_file: Path) -> None:
    """Restore a pg_dump into the node's database, which must hold no tables: one transaction, so
    that a failure leaves it empty; then open it as the node would (pending migrations)."""
    _pg_tool("pg_restore", "--list", str(backup_file))  # refuses a file that is not a dump
    try:
        held = move_.tables_of(url)
    except StorageUnavailable as exc:
        raise Unavailable(str(exc), code="restore.unavailable") from None
    if held:
        raise FailedPrecondition(
            f"the database {_safe_url(url)} already holds tables; restore into a new, empty database "
            "(createdb) and point `[storage] url` at it",
            code="restore.not_empty",
        )
    options = ("--no-owner", "--exit-on-error", "--single-transaction")
    _pg_tool("pg_restore", *options, f"--dbname={url}", str(backup_file))
    try:
        PostgresStore(url).close()
    except StorageError as exc:
        raise InvalidArgument(f"the restored database cannot be used: {exc}", code="restore.bad") from None


def _pg_tool(tool: str, *args: str) -> str:
    """Run one of PostgreSQL's programs (the newest installed); its output, or its error in words."""
    found = binaries()
    program = str(found / tool) if found and (found / tool).exists() else shutil.which(tool)
    if program is None:
        raise FailedPrecondition(
            f"{tool} is not installed: install PostgreSQL's client programs (postgresql-client)",
            code="backup.no_tool",
        )
    done = subprocess.run([program, *args], capture_output=True, text=True, timeout=24 * 3600, check=False)
    if done.returncode != 0:
        words = (done.stderr or done.stdout).strip().replace(args[-1], _safe_url(args[-1]))
        raise FailedPrecondition(f"{tool} failed: {words}", code=f"{tool}.failed")
    return done.stdout


def _safe_url(text: str) -> str:
    """A URL as it may be shown: without its password."""
    return re.sub(r"(postgres(?:ql)?://[^:/@]*):[^@]*@", r"\1:***@", text)


def _free_name(path: Path) -> Path:
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


# --- moving to PostgreSQL ----------------------------------------------------------------------


def move_to_postgresql(settings: Settings, config: Path, url: str) -> move_.Verified:
    """Copy a stopped node's SQLite state into the empty PostgreSQL database `url`, verify the copy,
    then set `[storage] url` in `config`. The SQLite file is only read, and kept as it is."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise UsageError("--to takes a postgresql:// URL", code="move.url")
    if settings.storage.url:
        raise FailedPrecondition(
            f"the node's state is in PostgreSQL already ({_safe_url(settings.storage.url)})", code="move.done"
        )
    lock = FolderLock(settings.base_dir)
    lock.acquire(doing="move its database")
    try:
        database = settings.path(settings.storage.path)
        check_database(database, writing=False)
        source = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
        try:
            verified = _move(source, url)
        finally:
            source.close()
        set_storage_url(config, url)
    finally:
        lock.release()
    return verified


def _move(source: sqlite3.Connection, url: str) -> move_.Verified:
    try:
        target = move_.open_target(url)
        try:
            move_.copy_state(source, target)
            try:
                return move_.verify_copy(source, target)
            except move_.CopyMismatch:
                move_.empty_target(target)
                raise
        finally:
            target.close()
    except StorageUnavailable as exc:
        raise Unavailable(str(exc), code="move.unavailable") from None
    except move_.CopyMismatch as exc:
        raise FailedPrecondition(
            f"{exc}; the node still uses its SQLite file and the copy was removed", code="move.mismatch"
        ) from None
    except (move_.MoveRefused, SchemaError) as exc:
        where = _safe_url(url)
        raise FailedPrecondition(f"cannot move the node into {where}: {exc}", code="move.refused") from None
    except StorageError as exc:
        where = _safe_url(url)
        raise FailedPrecondition(f"the copy into {where} failed and nothing was switched: {exc}") from None


_STORAGE_HEADER = re.compile(r"^\[storage\][ \t]*(#.*)?$", re.MULTILINE)
_ANY_HEADER = re.compile(r"^\[", re.MULTILINE)
_URL_LINE = re.compile(r"^url[ \t]*=.*$", re.MULTILINE)


def set_storage_url(config: Path, url: str) -> None:
    """Set `url` under [storage] in the config file, its other lines as they were; written to a
    new file (0600: the URL may hold a password) renamed over the old one."""
    text = config.read_text(encoding="utf-8")
    line = f"url = {toml_value(url)}"
    header = _STORAGE_HEADER.search(text)
    if header is None:
        text = text.rstrip("\n") + f"\n\n[storage]\n{line}\n"
    else:
        following = _ANY_HEADER.search(text, header.end())
        end = following.start() if following else len(text)
        section = text[header.end() : end]
        found = _URL_LINE.search(section)
        section = section[: found.start()] + line + section[found.end() :] if found else f"\n{line}" + section
        text = text[: header.end()] + section + text[end:]
    tmp = config.with_name(f".{config.name}.{os.getpid()}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, config)
    finally:
        tmp.unlink(missing_ok=True)
    sync_folder(config.parent)


# --- status ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeStatus:
    node_id: str
    name: str
    folder: str
    serving: bool  # a process holds the folder's lock
    pid: int | None
    address: str  # where it serves, "" when it does not
    answers: bool  # its port answered a gRPC health check
    revision: str  # the policy revision running (or that would run), "" when unknown
    members: int  # admitted: the members who count toward k and appear in releases
    applicants: int  # waiting for the board
    newest_reading: str  # in words, in the co-op's time zone
    newest_reading_at: str  # ISO 8601 with offset, "" with no readings
    peers: list[str]
    disk_bytes: int
    forecast: str  # the last forecast and the next, in words
    training: str  # the last training and the next, in words
    schedule: dict[str, Any]  # the same with the instants behind them (forecast/schedule.py)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def node_status(settings: Settings, zone: str | None = None, now: float | None = None) -> NodeStatus:
    """The node's state as an operator asks for it, read from its folder (and its port, if served)."""
    from coopfed.node.forecast.schedule import schedule_status
    from coopfed.node.forecast.store import ForecastStore

    zone = zone or settings.place.tz
    note = serving_note(settings.base_dir)
    address = _served_address(settings, note) if note is not None else ""
    if not settings.storage.url:
        check_database(settings.path(settings.storage.path))
    with open_store(settings) as store:
        members = sum(profile.member_count for profile in store.profiles())
        applicants = len(store.applicants(limit=1_000_000))
        newest = store.newest_period()
        peers = SqlFederationStore(store).peers()  # an upgrade's files are imported when it runs
        forecasts = ForecastStore(settings.path(settings.forecast.dir), SqlForecastIndex(store))
        schedule = schedule_status(settings, forecasts, serving=note is not None, now=now or time.time())
    return NodeStatus(
        node_id=settings.node.id,
        name=settings.node.name,
        folder=str(settings.base_dir),
        serving=note is not None,
        pid=(note or {}).get("pid"),
        address=address,
        answers=bool(address) and _answers(settings, address),
        revision=_revision(settings, serving=note is not None),
        members=members,
        applicants=applicants,
        newest_reading=_half_hour_in_words(newest, zone),
        newest_reading_at="" if newest is None else arrow.get(newest).to(zone).isoformat(),
        peers=sorted(peers),
        disk_bytes=_disk_use(settings.base_dir),
        forecast=schedule.pop("forecast"),
        training=schedule.pop("training"),
        schedule=schedule,
    )


def _served_address(settings: Settings, note: dict[str, Any]) -> str:
    host = settings.node.listen.rpartition(":")[0]
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host.strip("[]")).is_unspecified:
            host = "127.0.0.1"  # served on every address: ask on this machine's own
    port = note.get("port") or settings.node.listen.rpartition(":")[2]
    return f"{host}:{port}"


def _answers(settings: Settings, address: str) -> bool:
    if settings.node.plaintext:
        channel = grpc.insecure_channel(address)
    else:
        cert = settings.path(settings.tls.cert).read_bytes()
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=cert))
    with channel:
        try:
            stub: Any = health_pb2_grpc.HealthStub(channel)  # its type stubs declare no methods
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=3)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def _revision(settings: Settings, *, serving: bool) -> str:
    if serving:  # the running node says what it runs, over its admin socket
        with contextlib.suppress(CoopfedError, grpc.RpcError):  # still starting, or just stopped
            return str(ask(settings.base_dir, "Status", admin_pb2.StatusRequest(), timeout=5).revision)
    if settings.policy.bundle:
        return ""  # a signed bundle's revision is known once the node has verified it
    return load_policies(settings.path(settings.policy.dir)).revision


def _half_hour_in_words(start: int | None, zone: str) -> str:
    if start is None:
        return "no readings yet"
    begins, ends = arrow.get(start).to(zone), arrow.get(start + HALF_HOUR).to(zone)
    return f"{begins:HH:mm}-{ends:HH:mm} on {begins:dddd D MMMM YYYY} ({begins:ZZZ}), {begins.humanize()}"


def _disk_use(folder: Path) -> int:
    return sum(entry.stat().st_size for entry in _files(folder))


def _files(folder: Path) -> Iterator[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield from _files(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                yield entry
