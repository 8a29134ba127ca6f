"""A throwaway PostgreSQL server: initdb in a temporary folder, a unix socket there, no TCP.

The tests start one per session (tests/pgserver.py) and the scale benchmark one per run.
Root cannot run postgres: as root the server runs as `nobody`.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import psycopg

USER = "coopfed"  # the server's superuser, whoever runs the process


def binaries() -> Path | None:
    """The newest installed server's bin folder (Debian keeps them under /usr/lib/postgresql)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PgServer:
    """One postgres process on a unix socket in its own folder.

    `durable` False turns fsync off: right for tests, which kill processes but never the
    machine; a benchmark keeps it on so that its figures are those of a real server.
    """

    def __init__(
        self, bin_dir: Path, *, durable: bool = False, settings: dict[str, str] | None = None
    ) -> None:
        self.bin = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="coopfed-pg-"))
        self.data = self.folder / "data"
        self._durable = durable
        self._settings = settings or {}
        self._names = itertools.count(1)
        self._lock = threading.Lock()
        self._as: list[str] = []
        if os.getuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.folder, nobody.pw_uid, nobody.pw_gid)
            self._as = ["runuser", "-u", "nobody", "--"]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@/{database}?host={self.folder}"

    def start(self) -> None:
        self._run("initdb", "-D", self.data, "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync")
        self.restart()

    def create_database(self, name: str = "", template: str = "") -> str:
        """The URL of a new database (named `name`, else a fresh name), copied from `template`."""
        with self._lock:
            name = name or f"db_{os.getpid()}_{next(self._names)}"
            self.sql(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return self.url(name)

    def sql(self, statement: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]  # the callers' own fixed statements

    def tool(self, name: str) -> str:
        """The path of one of the server's programs (pg_dump, pg_restore...)."""
        return str(self.bin / name)

    def kill(self) -> None:
        """Stop the server at once, as a crash would (no shutdown checkpoint)."""
        self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def restart(self) -> None:
        """Start the server (again, after `kill`: it recovers from its write-ahead log)."""
        settings = {"listen_addresses": "''", **self._settings}
        if not self._durable:
            settings |= {"fsync": "off", "full_page_writes": "off"}
        options = f"-k {self.folder} " + " ".join(f"-c {k}={v}" for k, v in settings.items())
        self._run("pg_ctl", "-D", self.data, "-l", self.folder / "server.log", "-o", options, "-w", "start")

    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, tool: str, *args: object) -> None:
        command = [*self._as, str(self.bin / tool), *map(str, args)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}")
