"""What a member does with their own data: join, consent, upload, export, erase."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from coopfed.node.errors import InvalidArgument, PermissionDenied
from coopfed.node.model import ConsentSettings
from coopfed.node.readings import Batch, reject_duplicates
from coopfed.node.receipts import consent_receipt
from coopfed.node.runtime import Node
from coopfed.node.storage import ConsentRecord, Member


@dataclass(frozen=True)
class Registration:
    member_id: str
    token: str


def register(node: Node, display_name: str) -> Registration:
    name = display_name.strip()
    if not name or len(name) > 200:
        raise InvalidArgument(
            "display_name: give 1 to 200 characters",
            code="member.display_name",
            field="display_name",
        )
    member_id = "m-" + uuid.uuid4().hex[:16]
    node.store.create_member(member_id, name, ConsentSettings())
    return Registration(member_id, node.issue_member_token(member_id))


def own_member(caller_id: str, requested_id: str) -> str:
    """A member may act only on their own data; an empty id means the caller."""
    if requested_id and requested_id != caller_id:
        raise PermissionDenied("a member may act only on their own data", code="member.not_owner")
    return caller_id


def set_consent(
    node: Node, member_id: str, settings: ConsentSettings, withdrawal_reason: str
) -> tuple[ConsentRecord, str]:
    """Store the change as a consent record and return it with a signed consent receipt."""
    record = node.store.set_consent(
        member_id,
        settings,
        terms_version=node.policy_data["coop"]["terms_version"],
        withdrawal_reason=withdrawal_reason.strip(),
    )
    return record, consent_receipt(node, member_id, record)


def upload(node: Node, member_id: str, batches: list[Batch]) -> tuple[int, int]:
    """Store every batch of one upload, or none of them. Returns (inserted, replaced)."""
    reject_duplicates(batches)
    inserted, replaced = node.store.put_readings(member_id, [(b.dataset, b.periods, b.kwh) for b in batches])
    node.metrics.stored(inserted + replaced)
    return inserted, replaced


def export(node: Node, member_id: str) -> tuple[Member, list[ConsentRecord], Iterator]:
    member = node.store.get_member(member_id)
    return member, node.store.consent_history(member_id), node.store.iter_readings(member_id)


def erase(node: Node, member_id: str, confirm_member_id: str) -> int:
    if confirm_member_id != member_id:
        raise PermissionDenied(
            "confirm_member_id must be your own member id",
            code="member.not_owner",
            field="confirm_member_id",
        )
    return node.store.erase_member(member_id)
