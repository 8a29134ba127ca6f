"""The node's store as its settings name it: a PostgreSQL database, or by default the SQLite file."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from coopfed.node.storage.base import StorageUnavailable
from coopfed.node.storage.sql import SqlStore

if TYPE_CHECKING:
    from coopfed.node.settings import Settings

_SCHEMES = ("postgresql://", "postgres://")


def open_store(settings: Settings, *, create: bool = False) -> SqlStore:
    """`[storage] url` (PostgreSQL) if set, else the SQLite file at `[storage] path`; with
    `create` False a missing SQLite file is an error (a PostgreSQL database is migrated as found)."""
    conf = settings.storage
    if conf.url:
        if not conf.url.startswith(_SCHEMES):
            raise StorageUnavailable("[storage] url must be a PostgreSQL URL (postgresql://...)")
        from coopfed.node.storage.postgres import PostgresStore

        return PostgresStore(conf.url, pool_size=conf.pool_size)
    from coopfed.node.storage.sqlite import SqliteStore, Synchronous

    return SqliteStore(
        settings.path(conf.path), synchronous=cast(Synchronous, conf.synchronous), create=create
    )
