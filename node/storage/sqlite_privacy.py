"""Members' yearly differential-privacy spend in the SQLite store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from coopfed.node.storage.connection import Connection

_SPENT = """SELECT m.member_id, coalesce(s.epsilon, 0) FROM members AS m
LEFT JOIN privacy_spend AS s ON s.member_key = m.member_key AND s.year = ?2
WHERE m.member_id IN (SELECT value FROM json_each(?1))"""
_CHARGE = """INSERT INTO privacy_spend (member_key, year, epsilon)
SELECT member_key, ?2, ?3 FROM members WHERE member_id IN (SELECT value FROM json_each(?1))
ON CONFLICT (member_key, year) DO UPDATE SET epsilon = privacy_spend.epsilon + excluded.epsilon"""


class PrivacyMixin:
    """`Store.charge_privacy` and `Store.privacy_spent` over the `privacy_spend` table."""

    if TYPE_CHECKING:  # provided by SqliteStore

        def _write(self) -> AbstractContextManager[Connection]: ...
        def _read(self) -> AbstractContextManager[Connection]: ...

    def charge_privacy(
        self, member_ids: Sequence[str], year: int, epsilon: float, budget: float
    ) -> list[str]:
        ids = json.dumps(sorted(set(member_ids)))
        with self._write() as conn:
            spent = conn.execute(_SPENT, (ids, year)).fetchall()
            over = sorted(m for m, e in spent if e + epsilon > budget * (1 + 1e-9))
            if not over:
                conn.execute(_CHARGE, (ids, year, epsilon))
        return over

    def privacy_spent(self, member_ids: Sequence[str], year: int) -> dict[str, float]:
        with self._read() as conn:
            return dict(conn.execute(_SPENT, (json.dumps(list(member_ids)), year)).fetchall())
