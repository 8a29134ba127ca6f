"""Open-data publications the node has made, in the SQLite store."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from coopfed.node.storage.connection import Connection

_ADD = """INSERT INTO open_data_publications (publication_id, decision_id, published_at_unix, folder)
VALUES (?, ?, ?, ?)"""
_LAST = "SELECT max(published_at_unix) FROM open_data_publications"


class PublicationsMixin:
    """`Store.note_publication` and `Store.last_publication` over `open_data_publications`."""

    if TYPE_CHECKING:  # provided by SqliteStore

        def _write(self) -> AbstractContextManager[Connection]: ...
        def _read(self) -> AbstractContextManager[Connection]: ...

    def note_publication(self, publication_id: str, decision_id: str, at: int, folder: str) -> None:
        with self._write() as conn:
            conn.execute(_ADD, (publication_id, decision_id, at, folder))

    def last_publication(self) -> int | None:
        with self._read() as conn:
            at: int | None = conn.execute(_LAST).fetchone()[0]
            return at
