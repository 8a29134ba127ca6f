"""Members' declared homes in the SQLite store (benchmarking's peer groups, installed capacity)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING

from coopfed.node.storage import sqlite_sql as q
from coopfed.node.storage.base import Capacity, Home, MemberErased, NotFound
from coopfed.node.storage.connection import Connection

DELETE = "DELETE FROM homes WHERE member_key = ?"
_FIELDS = tuple(f.name for f in dataclasses.fields(Home))  # the columns below, in order
_UPSERT = """INSERT INTO homes (member_key, household_size, heating, has_pv, has_battery, home_type,
    solar_kw, wind_kw, battery_kwh, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (member_key) DO UPDATE SET household_size = excluded.household_size,
    heating = excluded.heating, has_pv = excluded.has_pv, has_battery = excluded.has_battery,
    home_type = excluded.home_type, solar_kw = excluded.solar_kw, wind_kw = excluded.wind_kw,
    battery_kwh = excluded.battery_kwh, updated_at = excluded.updated_at"""
_SELECT = """SELECT m.member_id, h.household_size, h.heating, h.has_pv, h.has_battery, h.home_type,
    h.solar_kw, h.wind_kw, h.battery_kwh
FROM homes AS h JOIN members AS m USING (member_key) WHERE m.erased_at IS NULL"""
_OF = " AND m.member_id IN (SELECT value FROM json_each(?))"
_CAPACITY = """SELECT count(*), coalesce(sum(h.solar_kw), 0), coalesce(sum(h.wind_kw), 0)
FROM homes AS h JOIN members AS m USING (member_key) JOIN profiles AS p USING (profile_key)
WHERE m.admitted_at IS NOT NULL AND (h.solar_kw IS NOT NULL OR h.wind_kw IS NOT NULL)
    AND p.profile_id IN (SELECT value FROM json_each(?))"""
_FLAGS = ("has_pv", "has_battery")


def _home(row: tuple) -> Home:
    values = dict(zip(_FIELDS, row, strict=True))
    for flag in _FLAGS:  # stored as 0/1
        values[flag] = None if values[flag] is None else bool(values[flag])
    return Home(**values)


class HomesMixin:
    """`Store.set_home`, `Store.homes` and `Store.capacity` over the `homes` table."""

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
                conn.execute(_UPSERT, (row[0], *dataclasses.astuple(home), stamp))

    def homes(self, member_ids: Sequence[str] | None = None) -> dict[str, Home]:
        with self._read() as conn:
            if member_ids is None:
                rows: Iterable[tuple] = conn.execute(_SELECT)
            else:
                rows = conn.execute(_SELECT + _OF, (json.dumps(list(member_ids)),))
            return {row[0]: _home(row[1:]) for row in rows}

    def capacity(self, profile_ids: Sequence[str]) -> Capacity:
        with self._read() as conn:
            members, solar, wind = conn.execute(_CAPACITY, (json.dumps(list(profile_ids)),)).fetchone()
            return Capacity(int(members), float(solar), float(wind))
