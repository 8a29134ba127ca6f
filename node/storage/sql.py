"""The node store's logic over SQL, shared by the SQLite and PostgreSQL backends.

A backend supplies connections (`_write`: one transaction that commits or rolls back whole,
`_read`: one consistent snapshot) that take the store's SQL with `?` placeholders, and the bulk
write of a batch of readings (`_store_rows`). Everything else, the running totals included, is here.
"""

from __future__ import annotations

import abc
import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np

from coopfed.node.model import HALF_HOUR, ConsentSettings
from coopfed.node.storage import sqlite_homes as homes_sql
from coopfed.node.storage import sqlite_sql as q
from coopfed.node.storage import sqlite_totals as totals
from coopfed.node.storage.base import (
    AlreadyExists,
    ConsentChanged,
    ConsentRecord,
    InvalidData,
    InvitationUnusable,
    Member,
    MemberErased,
    MeterTaken,
    NotAnApplicant,
    NotFound,
    PeriodTotals,
    ProfileInfo,
    PutResult,
    ReadingBatch,
    Store,
    describe_changes,
)
from coopfed.node.storage.connection import Connection
from coopfed.node.storage.group import GroupCommit, Pending
from coopfed.node.storage.sqlite_privacy import PrivacyMixin
from coopfed.node.storage.sqlite_publications import PublicationsMixin

_READING = np.dtype([("period_start", "i8"), ("kwh", "f8")])
_MEMBER_READING = np.dtype([("dataset_id", "i8"), ("period_start", "i8"), ("kwh", "f8")])
_ALL_TIME = (-(2**63), 2**63 - 1)
_ERASED = ("erased: readings and personal details deleted",)
_IN_CHUNK = 500  # meter hashes looked up per statement
EXTENT_BUCKET = 2**21  # seconds: the buckets of reading_extents (migrations/0018)


class SqlStore(homes_sql.HomesMixin, PrivacyMixin, PublicationsMixin, Store):
    """The store's members, consent, readings and totals over a backend's connections."""

    _datasets: dict[str, int]
    _dataset_names: dict[int, str]
    _clock: Callable[[], datetime]
    _uploads: GroupCommit[_Upload]  # the backend makes it: GroupCommit(self._put_group)

    @abc.abstractmethod
    def _write(self) -> AbstractContextManager[Connection]:
        """One write transaction, serialised with every other write; all of it commits or none."""

    @abc.abstractmethod
    def _read(self) -> AbstractContextManager[Connection]:
        """One read-only snapshot."""

    @abc.abstractmethod
    def _store_rows(
        self, conn: Connection, member_key: int, dataset_id: int, periods: np.ndarray, kwh: np.ndarray
    ) -> None:
        """Upsert one dataset's sorted, unique readings; InvalidData naming the dataset for a
        value the readings table refuses."""

    def _make_room(self, batches: list[tuple[int, np.ndarray, np.ndarray]]) -> None:
        """Before the write transaction of `put_readings`: whatever the backend needs to hold them."""

    @abc.abstractmethod
    def forget_write_order(self, *tables: str) -> None:
        """After a commit: rid the database, as far as the backend can, of what still shows in
        which order and by which transactions the rows of `tables` were written (the ballot
        tables, whose rows' order pairs voters with choices). Best effort."""

    # members and consent

    def create_member(
        self,
        member_id: str,
        display_name: str,
        settings: ConsentSettings,
        *,
        terms_version: str = "",
        at: datetime | None = None,
        meter: bytes | None = None,
        invitation: bytes | None = None,
        admitted_by: str = "",
    ) -> Member:
        stamp = self._stamp(at)
        with self._write() as conn:
            if conn.execute(q.MEMBER_KEYS, (member_id,)).fetchone():
                raise AlreadyExists(f"member {member_id!r} already exists")
            if meter is not None and conn.execute(q.METER_HOLDER, (meter,)).fetchone():
                raise MeterTaken("that meter belongs to another member")
            opened = None
            if invitation is not None:
                opened = conn.execute(q.OPEN_INVITATION, (invitation, stamp)).fetchone()
                if opened is None:
                    raise InvitationUnusable("that invitation code is unknown, used or expired")
                admitted_by = f"invitation {opened[1]}"
            profile_key = self._profile_key(conn, settings)
            admitted_at = stamp if admitted_by else None
            values = (member_id, display_name, stamp, settings.to_json(), profile_key, meter, admitted_at)
            member_key = conn.execute(q.INSERT_MEMBER, (*values, admitted_by)).lastrowid
            assert member_key is not None  # an INSERT always gives its row id
            if opened is not None:
                conn.execute(q.USE_INVITATION, (stamp, member_key, opened[0]))
            changes = describe_changes(None, settings, new_terms=terms_version)
            self._append(conn, member_key, stamp, settings, changes, terms_version, "")
        return self.get_member(member_id)

    def get_member(self, member_id: str) -> Member:
        with self._read() as conn:
            row = conn.execute(q.MEMBER, (member_id,)).fetchone()
        if row is None:
            raise NotFound(f"member {member_id!r} not found")
        return _member(row)

    def admit_member(self, member_id: str, *, by: str, at: datetime | None = None) -> Member:
        with self._write() as conn:
            self._admit(conn, member_id, by, self._stamp(at))
        return self.get_member(member_id)

    def _admit(self, conn: Connection, member_id: str, by: str, stamp: str) -> None:
        """Admit in the caller's transaction: the member's readings join their profile's totals."""
        member_key, profile_key, _, _, admitted_at = _writable(conn, member_id)
        if admitted_at is None:
            move_totals(conn, member_key, None, profile_key)
            conn.execute(q.ADMIT, (stamp, by, member_key))

    def refuse_member(self, member_id: str, *, reason: str, at: datetime | None = None) -> Member:
        with self._write() as conn:
            self._refuse(conn, member_id, reason, self._stamp(at))
        return self.get_member(member_id)

    def _refuse(self, conn: Connection, member_id: str, reason: str, stamp: str) -> None:
        member_key, _, _, _, admitted_at = _writable(conn, member_id)
        if admitted_at is not None:
            raise NotAnApplicant(f"member {member_id!r} was admitted already")
        conn.execute(q.REFUSE, (stamp, reason, member_key))

    def applicants(self, limit: int = 1000, *, after: str = "") -> list[Member]:
        with self._read() as conn:
            return [_member(row) for row in conn.execute(q.APPLICANTS, (after, limit)).fetchall()]

    def create_invitation(
        self,
        invitation_id: str,
        code_hash: bytes,
        expires_at: datetime,
        *,
        created_by: str,
        at: datetime | None = None,
    ) -> None:
        values = (invitation_id, code_hash, self._stamp(at), created_by, self._stamp(expires_at))
        with self._write() as conn:
            conn.execute(q.INSERT_INVITATION, values)

    def set_consent(
        self,
        member_id: str,
        settings: ConsentSettings,
        *,
        terms_version: str = "",
        withdrawal_reason: str = "",
        at: datetime | None = None,
        expected: ConsentSettings | None = None,
        seal: Callable[[ConsentRecord], str] | None = None,
    ) -> ConsentRecord:
        stamp = self._stamp(at)
        with self._write() as conn:
            member_key, old_profile, old_json, _, admitted_at = _writable(conn, member_id)
            if expected is not None and ConsentSettings.from_json(old_json) != expected:
                raise ConsentChanged(f"the consent of member {member_id!r} changed meanwhile")
            last = _record(conn.execute(q.LAST_RECORD, (member_key,)).fetchone())
            new_profile = self._profile_key(conn, settings)
            if new_profile != old_profile and admitted_at is not None:
                move_totals(conn, member_key, old_profile, new_profile)
            conn.execute(q.UPDATE_CONSENT, (settings.to_json(), new_profile, member_key))
            old = ConsentSettings.from_json(old_json)
            changes = describe_changes(old, settings, last.terms_version, terms_version)
            record = self._append(
                conn, member_key, stamp, settings, changes, terms_version, withdrawal_reason
            )
            if seal is None:
                return record
            receipt = seal(record)
            conn.execute(q.INSERT_RECEIPT, (record.record_id, receipt))
            return dataclasses.replace(record, receipt=receipt)

    def consent_history(
        self, member_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[ConsentRecord]:
        with self._read() as conn:
            rows = conn.execute(q.HISTORY, (member_id, after, q.no_limit(limit))).fetchall()
            # every member has at least the record made when they joined
            if not rows and conn.execute(q.MEMBER_KEYS, (member_id,)).fetchone() is None:
                raise NotFound(f"member {member_id!r} not found")
        return [_record(row) for row in rows]

    def erase_member(self, member_id: str, *, reason: str = "", at: datetime | None = None) -> int:
        stamp = self._stamp(at)
        with self._write() as conn:
            row = conn.execute(q.MEMBER_KEYS, (member_id,)).fetchone()
            if row is None:
                raise NotFound(f"member {member_id!r} not found")
            member_key, profile_key, _, erased_at, admitted_at = row
            if erased_at is not None:
                return 0
            last = _record(conn.execute(q.LAST_RECORD, (member_key,)).fetchone())
            if admitted_at is not None:
                move_totals(conn, member_key, profile_key, None)
            erased = conn.execute(q.DELETE_READINGS, (member_key,)).rowcount
            conn.execute(q.DELETE_EXTENTS, (member_key,))
            conn.execute(homes_sql.DELETE, (member_key,))
            red = ConsentSettings()
            conn.execute(q.ERASE_MEMBER, (red.to_json(), stamp, member_key))
            self._append(conn, member_key, stamp, red, _ERASED, last.terms_version, reason, "")
        return erased

    def _append(
        self,
        conn: Connection,
        member_key: int,
        stamp: str,
        settings: ConsentSettings,
        changes: tuple[str, ...],
        terms_version: str,
        reason: str,
        profile_id: str | None = None,
    ) -> ConsentRecord:
        profile_id = settings.profile_id if profile_id is None else profile_id
        values = (stamp, settings.to_json(), profile_id, json.dumps(changes), terms_version, reason)
        conn.execute(q.INSERT_RECORD, (member_key, *values))
        return _record(conn.execute(q.LAST_RECORD, (member_key,)).fetchone())

    @staticmethod
    def _profile_key(conn: Connection, settings: ConsentSettings) -> int:
        policy_json = json.dumps(settings.policy_input(), sort_keys=True)
        conn.execute(q.ENSURE_PROFILE, (settings.profile_id, policy_json))
        return conn.execute(q.PROFILE_KEY, (settings.profile_id,)).fetchone()[0]

    def _stamp(self, at: datetime | None) -> str:
        at = self._clock() if at is None else at
        if at.tzinfo is None:
            raise InvalidData("times must be timezone-aware UTC instants")
        return at.astimezone(UTC).isoformat(timespec="microseconds")

    # readings

    def put_readings(
        self,
        member_id: str,
        batches: Iterable[ReadingBatch | tuple[str, np.ndarray, np.ndarray]],
        *,
        before_commit: Callable[[], None] | None = None,
    ) -> PutResult:
        prepared = [self._prepare(*batch) for batch in batches]  # outside the lock
        self._make_room(prepared)
        upload = _Upload(member_id, prepared, before_commit, _refused(self._dataset_names, prepared))
        result: PutResult = self._uploads.run(upload)
        return result

    def put_readings_of(
        self, uploads: Sequence[tuple[str, Iterable[ReadingBatch | tuple[str, np.ndarray, np.ndarray]]]]
    ) -> list[PutResult | NotFound | MemberErased]:
        works = []
        for member_id, batches in uploads:
            prepared = [self._prepare(*batch) for batch in batches]
            works.append(_Upload(member_id, prepared, None, _refused(self._dataset_names, prepared)))
        self._make_room([batch for work in works for batch in work.batches])
        done = self._uploads.run_all(works)
        for pending in done:  # a member gone is theirs alone; anything else kept every upload out
            if pending.error is not None and not isinstance(pending.error, NotFound | MemberErased):
                raise pending.error
        return [p.result if p.error is None else p.error for p in done]  # type: ignore[misc]

    def meter_holders(self, meters: Sequence[bytes]) -> dict[bytes, str]:
        found: dict[bytes, str] = {}
        with self._read() as conn:
            for at in range(0, len(meters), _IN_CHUNK):
                chunk = list(meters[at : at + _IN_CHUNK])
                marks = ", ".join("?" * len(chunk))
                rows = conn.execute(f"{q.METER_HOLDERS} ({marks})", chunk).fetchall()
                found.update((bytes(meter), member_id) for meter, member_id in rows)
        return found

    def _put_group(self, group: Sequence[Pending[_Upload]]) -> None:
        """Store a group of uploads in one transaction. An upload whose member cannot take
        readings fails alone, storing nothing; so does one whose caller went away before the
        commit (the rest are written again without it)."""
        live = list(group)
        while live:
            try:
                results = self._put_together(live)
            except _Regroup:
                live = [p for p in live if p.error is None]
                continue
            for pending in live:
                pending.result = results.get(id(pending))
            return

    def _put_together(self, group: list[Pending[_Upload]]) -> dict[int, PutResult]:
        with self._write() as conn:
            ids = json.dumps(sorted({p.work.member_id for p in group}))
            found = {row[0]: row[1:] for row in conn.execute(q.MEMBERS_KEYS, (ids,)).fetchall()}
            owners, items = [], []
            for pending in group:
                try:
                    mine = _items(pending.work, found.get(pending.work.member_id))
                except (NotFound, MemberErased, InvalidData) as exc:  # before anything of it was written
                    pending.error = exc
                    continue
                owners += [id(pending)] * len(mine)
                items += mine
            sums = totals.Deltas()
            held = self._put_many(conn, items, sums)
            sums.apply(conn)
            gone = False
            for pending in group:
                check = pending.work.before_commit
                if pending.error is None and check is not None:
                    try:
                        check()
                    except Exception as exc:  # noqa: BLE001 - the caller's own error, theirs alone
                        pending.error, gone = exc, True
            if gone:
                raise _Regroup
        counts = {id(p): [0, 0] for p in group}
        for owner, item, replaced in zip(owners, items, held, strict=True):
            counts[owner][0] += item.periods.size - replaced
            counts[owner][1] += replaced
        return {owner: PutResult(*c) for owner, c in counts.items()}

    def _put_many(self, conn: Connection, items: list[Put], sums: totals.Deltas) -> list[int]:
        """Write the items in order (a backend may write them at once where none repeats another's
        member and dataset); returns how many readings of each replaced ones already held."""
        return [self._put(conn, item, sums) for item in items]

    def _prepare(
        self, dataset: str, periods: np.ndarray, kwh: np.ndarray
    ) -> tuple[int, np.ndarray, np.ndarray]:
        """Check shapes, types and uniqueness; return the dataset id and arrays sorted by period.

        Values themselves (range, NaN, half-hour grid) are `_refused`'s to check.
        """
        dataset_id = self._dataset_id(dataset)
        periods, kwh = np.asarray(periods), np.asarray(kwh)
        if periods.ndim != 1 or kwh.shape != periods.shape:
            raise InvalidData("periods and kwh must be one-dimensional and of equal length")
        if periods.size and periods.dtype.kind not in "iu":
            raise InvalidData(f"periods must be integer unix seconds, not {periods.dtype}")
        if kwh.size and kwh.dtype.kind not in "iuf":
            raise InvalidData(f"kwh must be real numbers, not {kwh.dtype}")
        if periods.dtype.kind == "u" and periods.size and periods.max() > np.iinfo(np.int64).max:
            raise InvalidData(f"{dataset}: a period is beyond the 64-bit range")
        if kwh.size and not (kwh <= totals.MAX_KWH).all():  # NaN too; the bound keeps totals in int64
            raise InvalidData(f"{dataset}: kwh must be a number no larger than {totals.MAX_KWH:g}")
        order = np.argsort(periods, kind="stable")
        periods, kwh = periods.astype(np.int64)[order], kwh.astype(np.float64)[order]
        if (periods[1:] == periods[:-1]).any():
            raise InvalidData(f"{dataset}: a period appears twice in one batch")
        return dataset_id, periods, kwh

    def _dataset_id(self, dataset: str) -> int:
        try:
            return self._datasets[dataset]
        except (KeyError, TypeError):
            raise InvalidData(f"unknown dataset {dataset!r}") from None

    def iter_readings(
        self,
        member_id: str,
        dataset: str | None = None,
        start: int | None = None,
        end: int | None = None,
        chunk: int = 50_000,
    ) -> Iterator[ReadingBatch]:
        if chunk < 1:
            raise ValueError("chunk must be at least 1")
        ids = [self._dataset_id(dataset)] if dataset is not None else sorted(self._dataset_names)
        with self._read() as conn:
            row = conn.execute(q.MEMBER_KEYS, (member_id,)).fetchone()
        if row is None:
            raise NotFound(f"member {member_id!r} not found")
        return self._stream(row[0], ids, _bounds(start, end), chunk)

    def _stream(
        self, member_key: int, ids: list[int], bounds: tuple[int, int], chunk: int
    ) -> Iterator[ReadingBatch]:
        with self._read() as conn:
            conn.execute("BEGIN")  # one snapshot across datasets; the pool ends it
            for dataset_id in ids:
                cursor = conn.execute(q.READINGS_RANGE, (member_key, dataset_id, *bounds))
                while rows := cursor.fetchmany(chunk):
                    arr = np.array(rows, dtype=_READING)
                    yield ReadingBatch(
                        self._dataset_names[dataset_id],
                        np.ascontiguousarray(arr["period_start"]),
                        np.ascontiguousarray(arr["kwh"]),
                    )

    def _put(self, conn: Connection, item: Put, sums: totals.Deltas) -> int:
        """Upsert one dataset's sorted, unique readings and add new - old to `sums`, the changes to
        the profile's totals (to none for an applicant). Returns how many replaced ones held."""
        bounds = (item.member_key, item.dataset_id, int(item.periods[0]), int(item.periods[-1]))
        held = np.array(conn.execute(q.HELD_READINGS, bounds).fetchall(), dtype=_READING)
        self._store_rows(conn, item.member_key, item.dataset_id, item.periods, item.kwh)
        extend(conn, [item])
        return count(item, held, sums)

    # aggregation

    def profiles(self) -> list[ProfileInfo]:
        with self._read() as conn:
            rows = conn.execute(q.PROFILES).fetchall()
        return [ProfileInfo(pid, ConsentSettings.from_json(js), n) for pid, js, n in rows]

    def profiles_in_use(self) -> dict[str, ConsentSettings]:
        with self._read() as conn:
            rows = conn.execute(q.PROFILES_IN_USE).fetchall()
        return {pid: ConsentSettings.from_json(js) for pid, js in rows}

    def profile_totals(
        self,
        profile_ids: Sequence[str],
        dataset: str,
        start: int | None = None,
        end: int | None = None,
    ) -> PeriodTotals:
        if isinstance(profile_ids, str):
            raise TypeError("profile_ids must be a sequence of profile ids, not one string")
        dataset_id = self._dataset_id(dataset)
        with self._read() as conn:
            return totals.query(conn, dataset_id, list(profile_ids), *_bounds(start, end))

    def newest_period(self) -> int | None:
        with self._read() as conn:
            return totals.newest_period(conn)


def move_totals(conn: Connection, member_key: int, old_profile: int | None, new_profile: int | None) -> None:
    """Move the member's readings from one profile's totals (or none) to another's (or none)."""
    rows = conn.execute(q.MEMBER_READINGS, (member_key,)).fetchall()
    readings = np.array(rows, dtype=_MEMBER_READING)
    for dataset_id in np.unique(readings["dataset_id"]).tolist():
        mine = readings[readings["dataset_id"] == dataset_id]
        periods, units = mine["period_start"], totals.units(mine["kwh"])
        if old_profile is not None:
            totals.apply(conn, dataset_id, old_profile, periods, -units, -1)
        if new_profile is not None:
            totals.apply(conn, dataset_id, new_profile, periods, units, 1)


class _Upload(NamedTuple):
    member_id: str
    batches: list[tuple[int, np.ndarray, np.ndarray]]
    before_commit: Callable[[], None] | None
    refused: InvalidData | None  # a value the readings table would refuse


def _refused(names: dict[int, str], batches: list[tuple[int, np.ndarray, np.ndarray]]) -> InvalidData | None:
    """What the readings table would refuse, found before the upload joins a group (where the
    database refusing it would fail everyone's); the member is checked first, as before."""
    for dataset_id, periods, kwh in batches:
        if not (kwh >= 0).all():
            return InvalidData(f"{names[dataset_id]}: kwh must be finite and >= 0")
        if not ((periods >= 0) & (periods % HALF_HOUR == 0)).all():
            return InvalidData(f"{names[dataset_id]}: periods must be >= 0 and on the half hour")
    return None


class Put(NamedTuple):
    """One dataset's sorted, unique readings of one member, and the profile whose totals they join."""

    member_key: int
    dataset_id: int
    profile_key: int | None
    periods: np.ndarray
    kwh: np.ndarray


class _Regroup(Exception):
    """A caller of the group went away before its commit: write the group again without it."""


def extend(conn: Connection, items: Sequence[Put]) -> None:
    """Widen the members' reading extents to hold the items' sorted periods: a row per bucket."""
    rows = []
    for item in items:
        periods = item.periods
        bucket = periods // EXTENT_BUCKET
        starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
        ends = np.r_[starts[1:], periods.size] - 1
        found = zip(bucket[starts].tolist(), periods[starts].tolist(), periods[ends].tolist(), strict=True)
        rows += [(item.member_key, item.dataset_id, *row) for row in found]
    conn.executemany(q.EXTEND, rows)


def count(item: Put, held: np.ndarray, sums: totals.Deltas) -> int:
    """Add the item's new - `held` (its member's readings it replaces) to the totals' changes;
    returns how many it replaces."""
    _, new_at, held_at = np.intersect1d(
        item.periods, held["period_start"], assume_unique=True, return_indices=True
    )
    delta, added = totals.units(item.kwh), np.ones(item.periods.size, np.int64)
    delta[new_at] -= totals.units(held["kwh"][held_at])
    added[new_at] = 0
    if item.profile_key is not None:
        sums.add(item.dataset_id, item.profile_key, item.periods, delta, added)
    return int(new_at.size)


def _items(upload: _Upload, keys: tuple | None) -> list[Put]:
    """What an upload writes, given its member's MEMBER_KEYS row, if the member can take readings."""
    member_key, profile_key, _, _, admitted_at = _checked(upload.member_id, keys)
    if upload.refused is not None:
        raise upload.refused
    counted = profile_key if admitted_at is not None else None  # applicants are in no totals
    return [Put(member_key, dataset_id, counted, p, k) for dataset_id, p, k in upload.batches if p.size]


def _writable(conn: Connection, member_id: str) -> tuple[int, int, str, str | None, str | None]:
    """The member's keys, settings, erasure and admission times, if anything may be written to them."""
    return _checked(member_id, conn.execute(q.MEMBER_KEYS, (member_id,)).fetchone())


def _checked(member_id: str, row: tuple | None) -> tuple[int, int, str, str | None, str | None]:
    if row is None:
        raise NotFound(f"member {member_id!r} not found")
    if row[3] is not None:
        raise MemberErased(f"member {member_id!r} was erased")
    return row


def _member(row: tuple) -> Member:
    mid, name, created, settings, profile_id, erased, admitted, admitted_by, refused, reason, meter = row
    return Member(
        mid, name, _time(created), ConsentSettings.from_json(settings), profile_id, _maybe_time(erased),
        _maybe_time(admitted), admitted_by, _maybe_time(refused), reason, bool(meter),
    )  # fmt: skip


def _record(row: tuple) -> ConsentRecord:
    record_id, member_id, at, settings_json, profile_id, changes, terms, reason, receipt = row
    return ConsentRecord(
        record_id, member_id, _time(at), settings_json, profile_id, tuple(json.loads(changes)),
        terms, reason, receipt,
    )  # fmt: skip


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _maybe_time(text: str | None) -> datetime | None:
    return None if text is None else _time(text)


def _bounds(start: int | None, end: int | None) -> tuple[int, int]:
    return (_ALL_TIME[0] if start is None else int(start), _ALL_TIME[1] if end is None else int(end))
