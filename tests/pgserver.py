"""The tests' throwaway PostgreSQL server (coopfed.node.storage.pgserver), one per session.

Started on first use and stopped when the test session ends (tests/conftest.py). Each test gets a
fresh database copied from a template that holds the migrated schema, so it costs a file copy,
not a migration run.
"""

from __future__ import annotations

import atexit
import threading

import pytest

from coopfed.node.storage import pgserver
from coopfed.node.storage.pgserver import binaries

TEMPLATE = "coopfed_template"

__all__ = ["PgServer", "binaries", "empty_database", "fresh_database", "server", "stop"]


class PgServer(pgserver.PgServer):
    """The package's throwaway server, with a migrated template that each test's database copies."""

    def start(self) -> None:
        super().start()
        from coopfed.node.storage.postgres import PostgresStore

        PostgresStore(self.create_database(TEMPLATE)).close()  # migrated once; tests copy it

    def fresh_database(self) -> str:
        """The URL of a new database holding the migrated schema and nothing else."""
        return self.create_database(template=TEMPLATE)


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


def empty_database() -> str:
    """The URL of a new database with no schema at all."""
    return server().create_database()


def stop() -> None:
    global _server
    with _started:
        if _server is not None:
            _server.stop()
            _server = None
