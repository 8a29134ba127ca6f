"""The storage interface every backend implements, its records and its errors."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, NamedTuple, Self

import numpy as np

from coopfed.node.model import ConsentSettings


class StorageError(Exception):
    """Base of every storage error; `code` is stable, and the node names it `storage.<code>`."""

    code = "error"


class NotFound(StorageError):
    code = "not_found"


class AlreadyExists(StorageError):
    code = "already_exists"


class MeterTaken(AlreadyExists):
    """Another member holds the meter; it is released only when they are erased."""

    code = "meter_taken"


class InvitationUnusable(StorageError):
    """No unused, unexpired invitation has that code."""

    code = "invitation_unusable"


class NotAnApplicant(StorageError):
    """Only an applicant can be refused: the member was admitted already (or erased)."""

    code = "not_an_applicant"


class MemberErased(StorageError):
    """The member exercised erasure: their id stays reserved, nothing can be written to it."""

    code = "member_erased"


class ConsentChanged(StorageError):
    """The member's consent is no longer what the caller read: read it again and redo the change."""

    code = "consent_changed"


class InvalidData(StorageError, ValueError):
    """The store refused values it would otherwise have to keep as garbage."""

    code = "invalid_data"


class ConstraintBroken(InvalidData):
    """A write broke one of the database's own rules: values no check before it caught, so the
    node's fault rather than the caller's (the RPC layer says INTERNAL)."""

    code = "constraint"


class StorageBusy(StorageError):
    """Another process held the database longer than the busy timeout; worth retrying."""

    code = "busy"


class StorageFull(StorageError):
    """The disk (or the database's size limit) is full; nothing of the write was kept."""

    code = "full"


class StorageUnavailable(StorageError):
    """The database cannot be written or read just now: read-only, missing, or an I/O error."""

    code = "unavailable"


class SchemaError(StorageError):
    """The database schema is not one this code can safely use."""

    code = "schema"


class SchemaTooNew(SchemaError):
    code = "schema_too_new"


@dataclass(frozen=True)
class Member:
    member_id: str
    display_name: str
    created_at: datetime
    settings: ConsentSettings
    profile_id: str  # "" once erased
    erased_at: datetime | None = None
    admitted_at: datetime | None = None  # None: an applicant, who counts toward nothing
    admitted_by: str = ""  # the board member, or the invitation, that admitted them
    refused_at: datetime | None = None
    refusal_reason: str = ""
    has_meter: bool = False

    @property
    def erased(self) -> bool:
        return self.erased_at is not None

    @property
    def status(self) -> str:
        """erased, admitted, refused or applicant."""
        if self.erased:
            return "erased"
        if self.admitted_at is not None:
            return "admitted"
        return "refused" if self.refused_at is not None else "applicant"


@dataclass(frozen=True)
class ConsentRecord:
    """One entry of a member's append-only consent history."""

    record_id: int
    member_id: str
    at: datetime
    settings_json: str  # exactly what was recorded, as ConsentSettings.to_json wrote it
    profile_id: str
    changes: tuple[str, ...]  # human-readable, e.g. "level: amber -> green"
    terms_version: str
    withdrawal_reason: str
    receipt: str = ""  # the signed consent receipt issued for this record, if one was

    @property
    def settings(self) -> ConsentSettings:
        return ConsentSettings.from_json(self.settings_json)


HEATING = ("gas", "electric", "heat_pump", "oil", "district", "other")
HOME_TYPES = ("flat", "terraced", "semi_detached", "detached", "other")
# What a home may have installed, in plain words and its unit; values from 0 to MAX_INSTALLED.
INSTALLED = {
    "solar_kw": "solar panels, kW peak",
    "wind_kw": "wind turbine, kW peak",
    "battery_kwh": "battery, kWh",
}
MAX_INSTALLED = 1000.0
INSTALLED_RANGE = f"a number from 0 to {MAX_INSTALLED:g}"


@dataclass(frozen=True)
class Home:
    """What a member declares about their home for benchmarking; None means not declared."""

    household_size: int | None = None
    heating: str | None = None  # one of HEATING
    has_pv: bool | None = None
    has_battery: bool | None = None
    home_type: str | None = None  # one of HOME_TYPES
    solar_kw: float | None = None  # as INSTALLED
    wind_kw: float | None = None
    battery_kwh: float | None = None

    def __post_init__(self) -> None:
        size = self.household_size
        if size is not None and (type(size) is not int or not 1 <= size <= 12):
            raise InvalidData("household size: a whole number from 1 to 12")
        if self.heating is not None and self.heating not in HEATING:
            raise InvalidData(f"heating: one of {', '.join(HEATING)}")
        if self.home_type is not None and self.home_type not in HOME_TYPES:
            raise InvalidData(f"home type: one of {', '.join(HOME_TYPES)}")
        for field, words in INSTALLED.items():
            value = getattr(self, field)
            if value is not None and (
                type(value) not in (int, float) or not 0 <= value <= MAX_INSTALLED  # NaN fails too
            ):
                raise InvalidData(f"{words}: {INSTALLED_RANGE}")

    def declared(self) -> dict[str, Any]:
        """The fields the member declared."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


class Capacity(NamedTuple):
    """Installed capacity summed over the members who declared any (an undeclared kind is 0)."""

    members: int
    solar_kw: float
    wind_kw: float


class ReadingBatch(NamedTuple):
    """Half-hourly readings of one dataset: unix-second period starts and kWh, same length."""

    dataset: str
    periods: np.ndarray  # int64
    kwh: np.ndarray  # float64


class PutResult(NamedTuple):
    inserted: int  # readings for periods not held before
    replaced: int  # readings that replaced a value already held for the same period


class ProfileInfo(NamedTuple):
    profile_id: str
    settings: ConsentSettings  # what the policy reads; `nudges` is not part of a profile
    member_count: int


class PeriodTotals(NamedTuple):
    """Per-period totals summed over some consent profiles, ordered by period."""

    period_start: np.ndarray  # int64
    kwh_sum: np.ndarray  # float64
    member_count: np.ndarray  # int64, members contributing a reading to the period


def describe_changes(
    old: ConsentSettings | None, new: ConsentSettings, old_terms: str = "", new_terms: str = ""
) -> tuple[str, ...]:
    """What changed between two consent settings, in words a member can read."""
    if old is None:
        base = [f"joined at level {new.level.value}"]
        base += [f"persona: {new.persona}"] if new.persona else []
        base += [f"{ds}: allows {_flows(new.choices[ds])}" for ds in sorted(new.choices)]
        base += ["nudges: on"] if new.nudges else []
        return (*base, *([f"terms: {new_terms}"] if new_terms else []))
    changes = []
    if old.level != new.level:
        changes.append(f"level: {old.level.value} -> {new.level.value}")
    if old.persona != new.persona:
        changes.append(f"persona: {old.persona or 'none'} -> {new.persona or 'none'}")
    for ds in sorted(set(old.choices) | set(new.choices)):
        before, after = old.choices.get(ds, frozenset()), new.choices.get(ds, frozenset())
        if after - before:
            changes.append(f"{ds}: now allows {_flows(after - before)}")
        if before - after:
            changes.append(f"{ds}: no longer allows {_flows(before - after)}")
    if old.nudges != new.nudges:
        changes.append(f"nudges: {'on' if old.nudges else 'off'} -> {'on' if new.nudges else 'off'}")
    if old_terms != new_terms:
        changes.append(f"terms: {old_terms or 'none'} -> {new_terms or 'none'}")
    return tuple(changes)


def _flows(flows: Iterable) -> str:
    return ", ".join(sorted(f.value for f in flows))


class Store(abc.ABC):
    """A node's persistent state. Every write is one atomic transaction; a failed call writes nothing.

    Methods block; the node calls them through `asyncio.to_thread`, so implementations must be
    safe for concurrent readers and writers from several threads.
    """

    @abc.abstractmethod
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
        """Add a member and record their initial consent. AlreadyExists if the id was ever used.

        The member is an applicant unless `invitation` (an invitation code's SHA-256) opens an
        unused, unexpired invitation, which is used up in the same transaction and admits them
        (InvitationUnusable otherwise, nothing written), or `admitted_by` names who admitted them.
        `meter` (a keyed hash of their meter id) is refused with MeterTaken while another member
        holds it.
        """

    @abc.abstractmethod
    def admit_member(self, member_id: str, *, by: str, at: datetime | None = None) -> Member:
        """Admit an applicant (or a refused one): from now on they count toward k, and their
        readings join the profile totals in this transaction. Admitting again changes nothing."""

    @abc.abstractmethod
    def refuse_member(self, member_id: str, *, reason: str, at: datetime | None = None) -> Member:
        """Record the board's refusal of an applicant; NotAnApplicant if they were admitted."""

    @abc.abstractmethod
    def applicants(self, limit: int = 1000, *, after: str = "") -> list[Member]:
        """Members waiting for the board's decision (neither admitted nor refused), oldest first,
        from the one who applied after member `after` ('' from the first)."""

    @abc.abstractmethod
    def create_invitation(
        self,
        invitation_id: str,
        code_hash: bytes,
        expires_at: datetime,
        *,
        created_by: str,
        at: datetime | None = None,
    ) -> None:
        """Keep a single-use invitation by its code's SHA-256 (the code itself is never stored)."""

    @abc.abstractmethod
    def get_member(self, member_id: str) -> Member:
        """The member, erased or not. NotFound if the id was never used."""

    @abc.abstractmethod
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
        """Change consent, record what changed, and move an admitted member's readings between
        profiles' totals.

        With `expected`, refuse (ConsentChanged, nothing written) unless the member's settings
        are still those: a read-merge-write never undoes a change made in between. `seal` makes
        the record's receipt, kept with it in the same transaction; it must not use the store.
        """

    @abc.abstractmethod
    def consent_history(
        self, member_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[ConsentRecord]:
        """The member's consent records, oldest first, from the one after record id `after`
        (0: every record). NotFound for a member never seen."""

    @abc.abstractmethod
    def put_readings(
        self,
        member_id: str,
        batches: Iterable[ReadingBatch | tuple[str, np.ndarray, np.ndarray]],
        *,
        before_commit: Callable[[], None] | None = None,
    ) -> PutResult:
        """Store all batches in one transaction; a reading for a period already held replaces it.

        `before_commit` runs last inside the transaction: whatever it raises rolls it back (an
        upload whose caller has gone away stores nothing).

        Batches apply in order. Refuses (InvalidData, nothing written) unknown datasets,
        duplicate periods within a batch, periods off the half-hour grid or negative,
        and kWh values that are negative, infinite or NaN.
        """

    @abc.abstractmethod
    def put_readings_of(
        self, uploads: Sequence[tuple[str, Iterable[ReadingBatch | tuple[str, np.ndarray, np.ndarray]]]]
    ) -> list[PutResult | NotFound | MemberErased]:
        """`put_readings` for many members, all in one transaction: each member's result, or the
        NotFound or MemberErased that kept theirs out while the others' were stored."""

    @abc.abstractmethod
    def meter_holders(self, meters: Sequence[bytes]) -> dict[bytes, str]:
        """The member id holding each of these meter hashes that a member holds (an erased
        member holds none)."""

    @abc.abstractmethod
    def refresh_statistics(self) -> None:
        """After a bulk load: the database's query planner learns how many members and readings
        there now are, so that the next release is planned for them rather than for the tables
        as they were (a plan made for a few rows can cost a join per member pair)."""

    @abc.abstractmethod
    def iter_readings(
        self,
        member_id: str,
        dataset: str | None = None,
        start: int | None = None,
        end: int | None = None,
        chunk: int = 50_000,
    ) -> Iterator[ReadingBatch]:
        """Stream the member's readings with start <= period < end, by dataset then period.

        One consistent snapshot; each chunk holds one dataset and at most `chunk` readings.
        NotFound is raised by the call itself, not on the first iteration.
        """

    @abc.abstractmethod
    def erase_member(self, member_id: str, *, reason: str = "", at: datetime | None = None) -> int:
        """Erase the member's readings and personal details; return how many readings went.

        The readings leave the profile totals. The id stays reserved as a tombstone, and the
        consent history (settings, terms version and times, no readings) is kept, closed by an
        erasure record: the co-op must be able to show the consent under which it released data
        before the erasure (GDPR Art. 7(1), 17(3)(e)). Erasing again erases nothing and returns 0.
        """

    @abc.abstractmethod
    def set_home(self, member_id: str, home: Home | None, *, at: datetime | None = None) -> None:
        """Declare the member's home (replacing what was declared), or with None withdraw it.
        NotFound if the id was never used; MemberErased once erased (erasure deletes the home)."""

    @abc.abstractmethod
    def homes(self, member_ids: Sequence[str] | None = None) -> dict[str, Home]:
        """Declared homes of members not erased, by member id: all of them, or of `member_ids`."""

    @abc.abstractmethod
    def capacity(self, profile_ids: Sequence[str]) -> Capacity:
        """Solar and wind kW declared by the admitted members of the given consent profiles."""

    @abc.abstractmethod
    def charge_privacy(
        self, member_ids: Sequence[str], year: int, epsilon: float, budget: float
    ) -> list[str]:
        """Charge each member `epsilon` of their `year`'s privacy budget, all or none: returns the
        members it would take past `budget` (and then charges no one), else []."""

    @abc.abstractmethod
    def privacy_spent(self, member_ids: Sequence[str], year: int) -> dict[str, float]:
        """The epsilon each member (of those given that exist) has been charged in `year`."""

    @abc.abstractmethod
    def note_publication(self, publication_id: str, decision_id: str, at: int, folder: str) -> None:
        """Remember an open-data publication made at unix second `at` into `folder`."""

    @abc.abstractmethod
    def last_publication(self) -> int | None:
        """When (unix seconds) the newest open-data publication was made; None before the first."""

    @abc.abstractmethod
    def profiles(self) -> list[ProfileInfo]:
        """Consent profiles that currently have admitted members, with their admitted member counts."""

    @abc.abstractmethod
    def profiles_in_use(self) -> dict[str, ConsentSettings]:
        """The same profiles, id -> settings, without counting their members (a release's plan)."""

    @abc.abstractmethod
    def profile_totals(
        self,
        profile_ids: Sequence[str],
        dataset: str,
        start: int | None = None,
        end: int | None = None,
    ) -> PeriodTotals:
        """Per-period kWh sums and member counts over the given profiles, start <= period < end.

        Only admitted members' readings are in the totals. Unknown profile ids contribute
        nothing; periods with no readings are absent.
        """

    @abc.abstractmethod
    def newest_period(self) -> int | None:
        """The start of the newest half-hour any member holds a reading for; None with no readings."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
