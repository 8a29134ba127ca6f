"""Co-op manifests: this node's own, and a peer's, checked before anything in it is trusted."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from google.protobuf.timestamp_pb2 import Timestamp

from coopfed.federation.errors import KeyStoreError
from coopfed.federation.keys import Jwks
from coopfed.federation.tls import cert_fingerprint, cert_node_id, load_certificate, pinned_roots
from coopfed.node.errors import InvalidArgument
from coopfed.node.model import DATASETS
from coopfed.v1 import federation_pb2

if TYPE_CHECKING:
    from coopfed.federation.keys import KeyRing
    from coopfed.node.federation.context import Federation
    from coopfed.node.policy.holder import PolicyHolder

NODE_ID = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*", re.ASCII)
_ADDRESS = re.compile(r"[A-Za-z0-9.\-]+:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5}", re.ASCII)
_TEXT_LIMIT = 200
_MAX_AIMS = 64
_MAX_KEYS = 16
_GOVERNANCE_TEXT = ("legal_form", "decision_making", "consent_model", "policy_review")


@dataclass(frozen=True)
class Manifest:
    """What a co-op publishes: identity, aims, governance, policy, keys and endpoints."""

    coop_id: str
    name: str
    aims: tuple[str, ...]
    governance: dict[str, Any]
    policy_revision: str
    policy_hash: str
    jwks: Jwks
    tls_certificate_pem: bytes
    endpoints: dict[str, str]
    datasets: tuple[str, ...] = DATASETS
    issued_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def tls_fingerprint(self) -> str:
        return cert_fingerprint(self.tls_certificate_pem)

    def key_fingerprints(self) -> dict[str, str]:
        return self.jwks.fingerprints()

    def policy_input(self) -> dict[str, Any]:
        """The manifest as the federation policy reads it (no keys, certificates or addresses)."""
        return {
            "coop_id": self.coop_id,
            "name": self.name,
            "aims": list(self.aims),
            "governance": dict(self.governance),
            "policy_revision": self.policy_revision,
            "policy_hash": self.policy_hash,
            "datasets": list(self.datasets),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.policy_input(),
            "jwks": self.jwks.to_dict(),
            "tls_certificate_pem": self.tls_certificate_pem.decode("ascii"),
            "endpoints": dict(self.endpoints),
            "issued_at": self.issued_at,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Manifest:
        """Read back what `to_dict` wrote (a local state file, already checked when pinned)."""
        return cls(
            coop_id=raw["coop_id"],
            name=raw["name"],
            aims=tuple(raw["aims"]),
            governance=dict(raw["governance"]),
            policy_revision=raw["policy_revision"],
            policy_hash=raw["policy_hash"],
            jwks=Jwks.from_dict(raw["jwks"]),
            tls_certificate_pem=raw["tls_certificate_pem"].encode("ascii"),
            endpoints=dict(raw["endpoints"]),
            datasets=tuple(raw["datasets"]),
            issued_at=int(raw["issued_at"]),
        )

    def to_proto(self) -> federation_pb2.CoopManifest:
        gov = self.governance
        return federation_pb2.CoopManifest(
            coop_id=self.coop_id,
            name=self.name,
            aims=list(self.aims),
            governance=federation_pb2.ManifestGovernance(
                legal_form=gov["legal_form"],
                decision_making=gov["decision_making"],
                consent_model=gov["consent_model"],
                min_group_size=int(gov["min_group_size"]),
                policy_review=gov["policy_review"],
            ),
            policy_revision=self.policy_revision,
            policy_hash=self.policy_hash,
            jwks_json=json.dumps(self.jwks.to_dict(), sort_keys=True),
            tls_certificate_pem=self.tls_certificate_pem.decode("ascii"),
            endpoints=federation_pb2.ManifestEndpoints(**self.endpoints),
            datasets=list(self.datasets),
            issued_at=Timestamp(seconds=self.issued_at),
        )


def own_manifest(fed: Federation, keys: KeyRing, policy: PolicyHolder) -> Manifest:
    """This node's manifest, from its federation context, current policy data, keys and TLS certificate."""
    coop, conf = policy.data["coop"], policy.data["federation"]
    return Manifest(
        coop_id=fed.node_id,
        name=fed.name,
        aims=tuple(coop["aims"]),
        governance={**conf["governance"], "min_group_size": int(coop["k_min"])},
        policy_revision=str(conf["policy_revision"]),
        policy_hash=policy.revision,
        jwks=keys.jwks(),
        tls_certificate_pem=fed.tls.cert_pem,
        endpoints=fed.advertised(),
        datasets=DATASETS,
    )


def manifest_from_proto(msg: federation_pb2.CoopManifest, *, expect_id: str = "") -> Manifest:
    """Check a peer's manifest field by field; INVALID_ARGUMENT names the first bad field."""
    coop_id = msg.coop_id
    if not NODE_ID.fullmatch(coop_id) or len(coop_id) > 253:
        _bad("coop_id", "must be a DNS-style name (lower-case letters, digits, '-', '.')")
    if expect_id and coop_id != expect_id:
        _bad("coop_id", f"is {coop_id!r}, not the peer pinned as {expect_id!r}")
    _text("name", msg.name, required=True)
    if len(msg.aims) > _MAX_AIMS:
        _bad("aims", f"at most {_MAX_AIMS} purpose codes")
    for i, aim in enumerate(msg.aims):
        _text(f"aims[{i}]", aim, required=True)
    gov = msg.governance
    for name in _GOVERNANCE_TEXT:
        _text(f"governance.{name}", getattr(gov, name))
    _text("policy_revision", msg.policy_revision)
    if not re.fullmatch(r"[0-9a-f]{64}", msg.policy_hash):
        _bad("policy_hash", "must be a SHA-256 digest in lower-case hex")
    return Manifest(
        coop_id=coop_id,
        name=msg.name,
        aims=tuple(msg.aims),
        governance={**{n: getattr(gov, n) for n in _GOVERNANCE_TEXT}, "min_group_size": gov.min_group_size},
        policy_revision=msg.policy_revision,
        policy_hash=msg.policy_hash,
        jwks=_jwks(msg.jwks_json),
        tls_certificate_pem=_certificate(msg.tls_certificate_pem, coop_id),
        endpoints=_endpoints(msg.endpoints),
        datasets=tuple(_text(f"datasets[{i}]", d, required=True) for i, d in enumerate(msg.datasets)),
        issued_at=msg.issued_at.seconds,
    )


def _bad(name: str, problem: str) -> None:
    raise InvalidArgument(f"manifest {name} {problem}", code="manifest.invalid", field=name)


def _text(name: str, value: str, *, required: bool = False) -> str:
    if required and not value:
        _bad(name, "is required")
    if len(value) > _TEXT_LIMIT or any(ord(c) < 32 for c in value):
        _bad(name, f"must be at most {_TEXT_LIMIT} printable characters")
    return value


def _jwks(text: str) -> Jwks:
    try:
        jwks = Jwks.from_dict(json.loads(text))
    except (ValueError, KeyStoreError) as exc:
        raise InvalidArgument(
            f"manifest jwks_json: {exc}", code="manifest.invalid", field="jwks_json"
        ) from exc
    if not 1 <= len(jwks) <= _MAX_KEYS:
        _bad("jwks_json", f"must hold 1 to {_MAX_KEYS} keys")
    return jwks


def _certificate(pem: str, coop_id: str) -> bytes:
    data = pem.encode("ascii", errors="replace")
    try:
        load_certificate(data)
        pinned_roots([data])  # refuses a CA certificate: it could vouch for anyone
        named = cert_node_id(data)
    except KeyStoreError as exc:
        raise InvalidArgument(
            f"manifest tls_certificate_pem: {exc}", code="manifest.invalid", field="tls_certificate_pem"
        ) from exc
    if named != coop_id:
        _bad("tls_certificate_pem", f"is made out to {named!r}, not {coop_id!r}")
    return data


def _endpoints(msg: federation_pb2.ManifestEndpoints) -> dict[str, str]:
    for name in ("public", "peer"):
        value = getattr(msg, name)
        if not _ADDRESS.fullmatch(value):
            _bad(f"endpoints.{name}", "must be host:port")
    return {"public": msg.public, "peer": msg.peer}
