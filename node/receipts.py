"""Consent receipts in the shape of Kantara consent receipts / ISO/IEC TS 27560, signed as JWTs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from coopfed.federation.tokens import TokenUse, issue_token
from coopfed.node.model import DATASETS, Flow

if TYPE_CHECKING:
    from coopfed.federation.keys import KeyRing
    from coopfed.node.decisionlog import DecisionLog
    from coopfed.node.model import ConsentSettings
    from coopfed.node.policy.consent import ConsentAnswers
    from coopfed.node.policy.holder import PolicyHolder
    from coopfed.node.storage import ConsentRecord

RECEIPT_VERSION = "KI-CR-v1.1.0"
# Receipts are evidence for the member: they stay verifiable for years.
RECEIPT_TTL = 3650 * 86_400
_DISCLOSED = {Flow.MEMBER_TO_MEMBER, Flow.COOP_TO_COOP, Flow.THIRD_PARTY, Flow.OPEN_DATA}


class Receipts:
    """The signed receipt of each consent change: what the consent policy now allows, in words."""

    def __init__(
        self,
        policy: PolicyHolder,
        consent: ConsentAnswers,
        decision_log: DecisionLog,
        keys: KeyRing,
        node_id: str,
    ) -> None:
        self._policy, self._consent, self._log = policy, consent, decision_log
        self._keys, self._node_id = keys, node_id  # the ring rotates in place: read at each receipt

    def body(self, member_id: str, record: ConsentRecord, services: list[dict[str, Any]]) -> dict[str, Any]:
        """The receipt: one service per flow the member allows, with the purposes and datasets."""
        coop = self._policy.data["coop"]
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

    def _services(self, settings: ConsentSettings) -> list[dict[str, Any]]:
        profile = settings.policy_input()
        data = self._policy.data
        services = []
        for flow in Flow:
            purposes = []
            for purpose in data["coop"]["aims"]:
                datasets = [ds for ds in DATASETS if self._consent.allows(profile, ds, flow.value, purpose)]
                if datasets:
                    purposes.append(
                        {
                            "purpose": data["purposes"][purpose]["label"],
                            "purposeCategory": [purpose],
                            "consentType": "EXPLICIT",
                            "piiCategory": datasets,
                            "primaryPurpose": flow is Flow.INTERNAL,
                            "termination": "until the member changes consent or leaves the co-op",
                            "thirdPartyDisclosure": flow in _DISCLOSED,
                        }
                    )
            if purposes:
                services.append({"service": data["flows"][flow.value]["title"], "purposes": purposes})
        return services

    def sealer(self, member_id: str, settings: ConsentSettings) -> Callable[[ConsentRecord], str]:
        """Signs the receipt of the record that will store `settings`.

        The policy is asked first, outside the store's transaction; the store then calls the sealer
        with the record, so the receipt is kept together with the record or not at all."""
        services = self._services(settings)
        self._log.flush()  # the consent decisions the receipt shows, before it is shown

        def seal(record: ConsentRecord) -> str:
            return issue_token(
                self._keys,
                issuer=self._node_id,
                subject=member_id,
                audience=member_id,
                use=TokenUse.CONSENT_RECEIPT,
                ttl=RECEIPT_TTL,
                claims={"receipt": self.body(member_id, record, services)},
            )

        return seal
