"""Conversion between protobuf messages and the node's domain types, in one place."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from coopfed.federation.grants import Granularity
from coopfed.node.errors import InvalidArgument
from coopfed.node.members import ConsentChange
from coopfed.node.model import DATASETS, HALF_HOUR, ConsentLevel, ConsentSettings, Flow
from coopfed.node.storage import ConsentRecord, Member
from coopfed.v1 import common_pb2, governance_pb2, member_pb2


def flow_from_proto(value: int, field: str = "flow") -> Flow:
    if value == common_pb2.FLOW_UNSPECIFIED or value not in common_pb2.Flow.values():
        raise InvalidArgument(f"{field}: a flow is required", code="flow.unspecified", field=field)
    return Flow[common_pb2.Flow.Name(common_pb2.Flow.ValueType(value)).removeprefix("FLOW_")]


def flow_to_proto(flow: Flow) -> common_pb2.Flow.ValueType:
    return common_pb2.Flow.Value("FLOW_" + flow.name)


def granularity_from_proto(value: int, field: str = "granularity", *, code: str) -> Granularity | None:
    """The granularity named, None where none is (the caller says what that means); an unknown
    number is refused."""
    if value == governance_pb2.GRANULARITY_UNSPECIFIED:
        return None
    if value not in governance_pb2.Granularity.values():
        raise InvalidArgument(f"{field}: aggregate or individual", code=code, field=field)
    name = governance_pb2.Granularity.Name(governance_pb2.Granularity.ValueType(value))
    return Granularity(name.removeprefix("GRANULARITY_").lower())


def granularity_to_proto(value: Granularity | str) -> governance_pb2.Granularity.ValueType:
    return governance_pb2.Granularity.Value("GRANULARITY_" + Granularity(value).name)


def period_from_proto(msg: common_pb2.Period, field: str = "period", *, code: str) -> tuple[int, int]:
    """Half-hour aligned unix seconds, the start before the end; anything else is refused."""
    start, end = msg.start_unix, msg.end_unix
    if start < 0 or start % HALF_HOUR or end % HALF_HOUR or start >= end:
        raise InvalidArgument(
            f"{field}: half-hour aligned unix seconds, start before end", code=code, field=field
        )
    return start, end


def level_from_proto(value: int) -> ConsentLevel:
    if value == common_pb2.CONSENT_LEVEL_UNSPECIFIED or value not in common_pb2.ConsentLevel.values():
        raise InvalidArgument(
            "settings.level: a consent level is required",
            code="consent.level",
            field="settings.level",
        )
    name = common_pb2.ConsentLevel.Name(common_pb2.ConsentLevel.ValueType(value))
    return ConsentLevel[name.removeprefix("CONSENT_LEVEL_")]


def level_to_proto(level: ConsentLevel) -> common_pb2.ConsentLevel.ValueType:
    return common_pb2.ConsentLevel.Value("CONSENT_LEVEL_" + level.name)


_CONSENT_FIELDS = ("level", "choices", "persona", "nudges")


def consent_change_from_proto(request: member_pb2.SetConsentRequest, personas: set[str]) -> ConsentChange:
    """The fields named in the update mask (all of them when it is empty), validated."""
    paths = list(request.update_mask.paths)
    unknown = sorted(set(paths) - set(_CONSENT_FIELDS))
    if unknown:
        raise InvalidArgument(
            f"update_mask: cannot change {', '.join(unknown)}; settings are {', '.join(_CONSENT_FIELDS)}",
            code="consent.mask",
            field="update_mask",
        )
    msg = request.settings
    given = set(paths or _CONSENT_FIELDS)
    if "persona" in given and msg.persona and msg.persona not in personas:
        raise InvalidArgument(
            f"settings.persona: unknown persona {msg.persona!r}; known: {', '.join(sorted(personas))}",
            code="consent.persona",
            field="settings.persona",
        )
    replace = not paths
    level_given = "level" in given and not (replace and msg.persona)
    return ConsentChange(
        level=level_from_proto(msg.level) if level_given else None,
        choices=_choices_from_proto(msg) if "choices" in given and not (replace and msg.persona) else None,
        persona=msg.persona if "persona" in given else None,
        nudges=msg.nudges if "nudges" in given else None,
        replace=replace,
    )


def _choices_from_proto(msg: member_pb2.ConsentSettings) -> dict[str, frozenset[Flow]]:
    choices: dict[str, frozenset[Flow]] = {}
    for i, choice in enumerate(msg.choices):
        where = f"settings.choices[{i}]"
        if choice.dataset not in DATASETS:
            raise InvalidArgument(
                f"{where}.dataset: unknown dataset {choice.dataset!r}",
                code="consent.dataset",
                field=where,
            )
        if choice.dataset in choices:
            raise InvalidArgument(
                f"{where}.dataset: {choice.dataset!r} is chosen twice",
                code="consent.duplicate",
                field=where,
            )
        flows = [
            flow_from_proto(f, f"{where}.allowed_flows[{j}]") for j, f in enumerate(choice.allowed_flows)
        ]
        choices[choice.dataset] = frozenset(flows)
    return choices


def settings_to_proto(settings: ConsentSettings) -> member_pb2.ConsentSettings:
    return member_pb2.ConsentSettings(
        level=level_to_proto(settings.level),
        choices=[
            common_pb2.DatasetChoice(dataset=ds, allowed_flows=sorted(flow_to_proto(f) for f in flows))
            for ds, flows in sorted(settings.choices.items())
        ],
        persona=settings.persona,
        nudges=settings.nudges,
    )


def timestamp(at: datetime | int) -> Timestamp:
    """A protobuf Timestamp from an aware datetime or from unix seconds."""
    ts = Timestamp()
    if isinstance(at, datetime):
        ts.FromDatetime(at.astimezone(UTC))
    else:
        ts.FromSeconds(int(at))
    return ts


def instant_from_proto(message: object, field: str) -> datetime | None:
    """The aware instant in `message.<field>` (a Timestamp), None where unset; INVALID_ARGUMENT
    for one outside years 1-9999 or with nanos outside [0, 1e9)."""
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    ts: Timestamp = getattr(message, field)
    try:
        if not 0 <= ts.nanos < 1_000_000_000:
            raise ValueError(ts.nanos)
        return ts.ToDatetime(UTC)
    except (ValueError, OverflowError, OSError):
        raise InvalidArgument(
            f"{field}: not a time between the years 1 and 9999 ({ts.seconds} s, {ts.nanos} ns)",
            code="time.out_of_range",
            field=field,
        ) from None


def record_to_proto(record: ConsentRecord) -> member_pb2.ConsentRecord:
    return member_pb2.ConsentRecord(
        record_id=str(record.record_id),
        at=timestamp(record.at),
        settings=settings_to_proto(record.settings),
        changes=list(record.changes),
        terms_version=record.terms_version,
        withdrawal_reason=record.withdrawal_reason,
        receipt=record.receipt,
    )


def profile_to_proto(member: Member, history: list[ConsentRecord]) -> member_pb2.MemberProfile:
    return member_pb2.MemberProfile(
        member_id=member.member_id,
        display_name=member.display_name,
        registered_at=timestamp(member.created_at),
        consent=settings_to_proto(member.settings),
        consent_history=[record_to_proto(r) for r in history],
    )
