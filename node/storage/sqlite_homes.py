"""Members' declared homes in the SQLite store (benchmarking's peer groups)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING

from coopfed.node.storage import sqlite_sql as q
from coopfed.node.storage.base import Home, MemberErased, NotFound
from coopfed.node.storage.connection import Connection

DELETE = "DELETE FROM homes WHERE member_key = ?"
_UPSERT = """INSERT INTO homes (member_key, household_size, heating, has_pv, has_battery, home_type,
    updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (member_key) DO UPDATE SET
    household_size = excluded.household_size, heating = excluded.heating, has_pv = excluded.has_pv,
    has_battery = excluded.has_battery, home_type = excluded.home_type, updated_at = excluded.updated_at"""
_SELECT = """SELECT m.member_id, h.household_size, h.heating, h.has_pv, h.has_battery, h.home_type
FROM homes AS h JOIN members AS m USING (member_key) WHERE m.erased_at IS NULL"""
_OF = " AND m.member_id IN (SELECT value FROM json_each(?))"


def _flag(value: int | None) -> bool | None:
    return None if value is None else bool(value)


class HomesMixin:
    """`Store.set_home` and `Store.homes` over the `homes` table."""

    if TYPE_CHECKING:  # provided by SqliteStore

        def _write(self) -> AbstractContextManager[Connection]: ...
        def _read(self) -> AbstractContextManager[Connection]: ...
        def _stamp(self, at: datetime | None) -> str: ...

    def set_home(self, member_id: str, home: Home | None, *, at: datetime | None = None) -> None:
        stamp = self._stamp(at)
        with self._write() as conn:
            row = conn.execute(q.MEMBER_KEYS, (member_id,)).fetchone()
            if row is None:
                raise NotFound(f"member {member_id!r} not found")
            if row[3] is not None:
                raise MemberErased(f"member {member_id!r} has been erased")
            conn.execute(DELETE, (row[0],))
            if home is not None:
                h = home
                conn.execute(
                    _UPSERT,
                    (row[0], h.household_size, h.heating, h.has_pv, h.has_battery, h.home_type, stamp),
                )

    def homes(self, member_ids: Sequence[str] | None = None) -> dict[str, Home]:
        with self._read() as conn:
            if member_ids is None:
                rows: Iterable[tuple] = conn.execute(_SELECT)
            else:
                rows = conn.execute(_SELECT + _OF, (json.dumps(list(member_ids)),))
            return {m: Home(size, heat, _flag(pv), _flag(bat), kind) for m, size, heat, pv, bat, kind in rows}
