"""Consent receipts in the shape of Kantara consent receipts / ISO/IEC TS 27560, signed as JWTs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from coopfed.federation.tokens import TokenUse, issue_token
from coopfed.node.model import DATASETS, Flow

if TYPE_CHECKING:
    from coopfed.node.model import ConsentSettings
    from coopfed.node.runtime import Node
    from coopfed.node.storage import ConsentRecord

RECEIPT_VERSION = "KI-CR-v1.1.0"
# Receipts are evidence for the member: they stay verifiable for years.
RECEIPT_TTL = 3650 * 86_400
_DISCLOSED = {Flow.MEMBER_TO_MEMBER, Flow.COOP_TO_COOP, Flow.THIRD_PARTY, Flow.OPEN_DATA}


def receipt_body(
    node: Node, member_id: str, record: ConsentRecord, services: list[dict[str, Any]]
) -> dict[str, Any]:
    """The receipt: one service per flow the member allows, with the purposes and datasets."""
    coop = node.policy_data["coop"]
    return {
        "version": RECEIPT_VERSION,
        "jurisdiction": coop.get("jurisdiction", "GB"),
        "consentTimestamp": int(record.at.timestamp()),
        "collectionMethod": "coopfed MemberService.SetConsent",
        "consentReceiptID": str(record.record_id),
        "language": "en",
        "piiPrincipalId": member_id,
        "piiControllers": [{"piiController": coop["name"], "contact": coop.get("contact", "")}],
        "policyUrl": coop.get("policy_url", ""),
        "termsVersion": record.terms_version,
        "services": services,
        "sensitive": False,
        "spiCat": [],
        "withdrawalReason": record.withdrawal_reason,
    }


def _services(node: Node, settings: ConsentSettings) -> list[dict[str, Any]]:
    profile = settings.policy_input()
    aims = node.policy_data["coop"]["aims"]
    services = []
    for flow in Flow:
        purposes = []
        for purpose in aims:
            datasets = [ds for ds in DATASETS if node.consent.allows(profile, ds, flow.value, purpose)]
            if datasets:
                purposes.append(
                    {
                        "purpose": node.policy_data["purposes"][purpose]["label"],
                        "purposeCategory": [purpose],
                        "consentType": "EXPLICIT",
                        "piiCategory": datasets,
                        "primaryPurpose": flow is Flow.INTERNAL,
                        "termination": "until the member changes consent or leaves the co-op",
                        "thirdPartyDisclosure": flow in _DISCLOSED,
                    }
                )
        if purposes:
            services.append({"service": node.policy_data["flows"][flow.value]["title"], "purposes": purposes})
    return services


def receipt_sealer(node: Node, member_id: str, settings: ConsentSettings) -> Callable[[ConsentRecord], str]:
    """Signs the receipt of the record that will store `settings`.

    The policy is asked first, outside the store's transaction; the store then calls the sealer
    with the record, so the receipt is kept together with the record or not at all."""
    services = _services(node, settings)
    if node.decision_log is not None:
        node.decision_log.flush()  # the consent decisions the receipt shows, before it is shown

    def seal(record: ConsentRecord) -> str:
        return issue_token(
            node.keys,
            issuer=node.node_id,
            subject=member_id,
            audience=member_id,
            use=TokenUse.CONSENT_RECEIPT,
            ttl=RECEIPT_TTL,
            claims={"receipt": receipt_body(node, member_id, record, services)},
        )

    return seal
