"""A throwaway PostgreSQL server for the tests: initdb in a temporary folder, a unix socket there.

Started on first use and stopped when the test session ends (tests/conftest.py). Each test gets a
fresh database copied from a template that holds the migrated schema, so it costs a file copy,
not a migration run. Root cannot run postgres: as root the server runs as `nobody`.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

TEMPLATE = "coopfed_template"
_USER = "coopfed"  # the server's superuser, whoever runs the process


def binaries() -> Path | None:
    """The newest installed server's bin folder (Debian keeps them under /usr/lib/postgresql)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PgServer:
    """One postgres process on a unix socket in its own folder, no TCP."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="coopfed-pg-"))
        self.data = self.folder / "data"
        self._names = itertools.count(1)
        self._lock = threading.Lock()
        self._as: list[str] = []
        if os.getuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.folder, nobody.pw_uid, nobody.pw_gid)
            self._as = ["runuser", "-u", "nobody", "--"]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{_USER}@/{database}?host={self.folder}"

    def start(self) -> None:
        self._run("initdb", "-D", self.data, "-U", _USER, "--auth=trust", "-E", "UTF8", "--no-sync")
        self.restart()
        from coopfed.node.storage.postgres import PostgresStore

        self.sql(f"CREATE DATABASE {TEMPLATE}")
        PostgresStore(self.url(TEMPLATE)).close()  # migrated once; every test database copies it

    def fresh_database(self) -> str:
        """The URL of a new database holding the migrated schema and nothing else."""
        with self._lock:
            name = f"test_{os.getpid()}_{next(self._names)}"
            self.sql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.url(name)

    def sql(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]  # the tests' own fixed statements

    def kill(self) -> None:
        """Stop the server at once, as a crash would (no shutdown checkpoint)."""
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def restart(self) -> None:
        """Start the server (again, after `kill`: it recovers from its write-ahead log)."""
        # fsync off: the tests kill processes, never the machine, and the page cache survives that
        options = f"-k {self.folder} -c listen_addresses='' -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", self.data, "-l", self.folder / "server.log", "-o", options, "-w", "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, tool: str, *args: object) -> None:
        command = [*self._as, str(self.bin / tool), *map(str, args)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}")


_server: PgServer | None = None
_started = threading.Lock()


def server() -> PgServer:
    """The session's server, started on first use; skips the test where PostgreSQL is not installed."""
    global _server
    with _started:
        if _server is None:
            bin_dir = binaries()
            if bin_dir is None:
                pytest.skip("PostgreSQL server not installed (make install installs it as root)")
            _server = PgServer(bin_dir)
            atexit.register(_server.stop)
            _server.start()
        return _server


def fresh_database() -> str:
    return server().fresh_database()


def stop() -> None:
    global _server
    with _started:
        if _server is not None:
            _server.stop()
            _server = None
