"""What a member does with their own data: join, consent, upload, export, erase."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coopfed.node.credentials import Credentials
from coopfed.node.decisionlog import DecisionLog
from coopfed.node.errors import (
    AlreadyExists,
    InvalidArgument,
    PermissionDenied,
    Unavailable,
)
from coopfed.node.limits import limit_of
from coopfed.node.meters import meter_hash
from coopfed.node.metrics import Metrics
from coopfed.node.model import ConsentLevel, ConsentSettings, Flow
from coopfed.node.policy.holder import PolicyHolder
from coopfed.node.readings import Batch, merged, reject_duplicates
from coopfed.node.receipts import Receipts
from coopfed.node.storage import ConsentChanged, ConsentRecord, InvitationUnusable, Member, MeterTaken, Store

# A change races another only when both land within the same few milliseconds; a few tries settle it.
_CONSENT_TRIES = 5


ADMISSION_PATH = "coopfed/membership/admission"
_MAX_CODE = limit_of("invitation_code")
_MAX_NAME = limit_of("display_name")


@dataclass(frozen=True)
class Registration:
    member_id: str
    token: str
    status: str  # applicant, or admitted by an invitation


def invitation_hash(code: str) -> bytes:
    """What the node keeps of an invitation code: 128 random bits need no key or slow hash."""
    return hashlib.sha256(code.encode()).digest()


def own_member(caller_id: str, requested_id: str) -> str:
    """A member may act only on their own data; an empty id means the caller."""
    if requested_id and requested_id != caller_id:
        raise PermissionDenied("a member may act only on their own data", code="member.not_owner")
    return caller_id


@dataclass(frozen=True)
class ConsentChange:
    """What a member asks to change; None leaves a setting as it is.

    `choices` names only the datasets that change (no flows: nothing shared); `replace` makes
    the change replace every setting instead (choices of datasets not named are dropped)."""

    level: ConsentLevel | None = None
    choices: Mapping[str, frozenset[Flow]] | None = None
    persona: str | None = None
    nudges: bool | None = None
    replace: bool = False

    def apply(self, current: ConsentSettings, personas: Mapping[str, Any]) -> ConsentSettings:
        base = ConsentSettings(nudges=current.nudges) if self.replace else current
        nudges = base.nudges if self.nudges is None else self.nudges
        if self.persona:
            if not self.replace and (self.level is not None or self.choices is not None):
                raise InvalidArgument(
                    "a persona sets the level and choices itself: give a persona or a level and choices",
                    code="consent.persona_and_choices",
                    field="settings.persona",
                )
            return _persona_settings(self.persona, personas[self.persona], nudges)
        merged = {**base.choices, **(self.choices or {})}
        choices = {ds: flows for ds, flows in merged.items() if flows}  # no flows: nothing to keep
        level = base.level if self.level is None else self.level
        if self.choices and level is not ConsentLevel.AMBER:
            raise InvalidArgument(
                f"choices per dataset apply only at amber, and your consent would be {level.value}: "
                "set the level to amber to choose per dataset",
                code="consent.choices_need_amber",
                field="settings.choices",
            )
        # Choosing a level or choices yourself leaves the persona, whose preset would replace them.
        chose = self.level is not None or self.choices is not None
        persona = "" if chose or self.persona == "" else base.persona
        return ConsentSettings(level=level, choices=choices, persona=persona, nudges=nudges)


def _persona_settings(name: str, persona: Mapping[str, Any], nudges: bool) -> ConsentSettings:
    """A persona's preset as settings, so that what the member sees is what the persona means.
    Internal use is always allowed, so it is not a choice."""
    choices = {
        ds: frozenset(Flow(f) for f in flows if f != Flow.INTERNAL)
        for ds, flows in persona.get("flows", {}).items()
    }
    return ConsentSettings(level=ConsentLevel(persona["level"]), choices=choices, persona=name, nudges=nudges)


class Members:
    """What members do with their own data, over the node's store, policy, logs and tokens."""

    def __init__(
        self,
        *,
        store: Store,
        policy: PolicyHolder,
        decision_log: DecisionLog,
        credentials: Credentials,
        receipts: Receipts,
        metrics: Metrics,
        base_dir: Path,  # where the meter key lives
    ) -> None:
        self.store, self.policy, self.decision_log = store, policy, decision_log
        self.credentials, self.receipts, self.metrics, self.base_dir = (
            credentials,
            receipts,
            metrics,
            base_dir,
        )

    def register(self, display_name: str, meter_id: str = "", invitation_code: str = "") -> Registration:
        """Apply to join; a valid invitation admits at once (logged as the board's admission)."""
        name = display_name.strip()
        if not name or len(name) > _MAX_NAME:
            raise InvalidArgument(
                f"display_name: give 1 to {_MAX_NAME} characters",
                code="member.display_name",
                field="display_name",
            )
        code = invitation_code.strip()
        if len(code) > _MAX_CODE:
            raise InvalidArgument(
                f"invitation_code: at most {_MAX_CODE} characters",
                code="member.invitation",
                field="invitation_code",
            )
        meter = meter_hash(self.base_dir, meter_id)
        member_id = "m-" + uuid.uuid4().hex[:16]
        terms = self.policy.data["coop"]["terms_version"]
        try:
            member = self.store.create_member(
                member_id, name, ConsentSettings(), terms_version=terms, meter=meter,
                invitation=invitation_hash(code) if code else None,
            )  # fmt: skip
        except MeterTaken:
            raise AlreadyExists(
                "that meter belongs to another member of the co-op; if it is yours, ask the co-op",
                code="member.meter_taken",
                field="meter_id",
            ) from None
        except InvitationUnusable:
            raise PermissionDenied(
                "that invitation code is unknown, used already or expired; ask the co-op for a new one",
                code="member.invitation",
                field="invitation_code",
            ) from None
        if member.admitted_at is not None:
            log = self.decision_log
            event = {"member_id": member_id, "by": member.admitted_by}
            log.append(log.event(ADMISSION_PATH, event, {"admitted": True}, self.policy.revision))
        return Registration(member_id, self.credentials.issue_member_token(member_id), member.status)

    def set_consent(self, member_id: str, change: ConsentChange, withdrawal_reason: str) -> ConsentRecord:
        """Merge the change into the stored settings and keep it as a record with its signed receipt.

        The merge is read-modify-write: the store refuses the write if the settings changed after
        they were read, and the change is merged again, so no concurrent change is ever undone."""
        for _ in range(_CONSENT_TRIES):
            before = self.store.get_member(member_id).settings
            after = change.apply(before, self.policy.personas)
            try:
                return self.store.set_consent(
                    member_id,
                    after,
                    terms_version=self.policy.data["coop"]["terms_version"],
                    withdrawal_reason=withdrawal_reason.strip(),
                    expected=before,
                    seal=self.receipts.sealer(member_id, after),
                )
            except ConsentChanged:
                continue
        raise Unavailable(
            "your consent was being changed by other requests at the same time; try again",
            code="member.consent_busy",
        )

    def upload(
        self, member_id: str, batches: list[Batch], still_wanted: Callable[[], None] | None = None
    ) -> tuple[int, int]:
        """Store every batch of one upload, or none of them. Returns (inserted, replaced).

        `still_wanted` raises when the caller has gone away; it runs just before the commit, so a
        stream cut off while it was being stored stores nothing either."""
        reject_duplicates(batches)
        inserted, replaced = self.store.put_readings(member_id, merged(batches), before_commit=still_wanted)
        self.metrics.stored(inserted + replaced)
        return inserted, replaced

    def export(self, member_id: str) -> tuple[Member, list[ConsentRecord], Iterator]:
        member = self.store.get_member(member_id)
        return member, self.store.consent_history(member_id), self.store.iter_readings(member_id)

    def erase(self, member_id: str, confirm_member_id: str) -> int:
        if confirm_member_id != member_id:
            raise PermissionDenied(
                "confirm_member_id must be your own member id",
                code="member.not_owner",
                field="confirm_member_id",
            )
        return self.store.erase_member(member_id)
