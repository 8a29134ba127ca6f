"""What a node keeps about the federation: pinned peers, its grant decisions and revocations,
the grants it holds from peers and the peers' revocation lists."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from coopfed.federation.grants import Constraints, GrantScope
from coopfed.federation.keys import TrustStore
from coopfed.federation.revocation import RevocationEntry, RevocationList
from coopfed.node.errors import NotFound
from coopfed.node.federation.files import Folder, JsonDocument, JsonLines
from coopfed.node.federation.manifest import Manifest

PEERS_FILE = "peers.json"


@dataclass(frozen=True)
class PeerRecord:
    """A pinned peer: its manifest as last seen and the federation policy's verdict on it."""

    manifest: Manifest
    pinned_at: int
    updated_at: int
    aligned: bool
    reasons: tuple[str, ...]

    @property
    def peer_id(self) -> str:
        return self.manifest.coop_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest.to_dict(),
            "pinned_at": self.pinned_at,
            "updated_at": self.updated_at,
            "aligned": self.aligned,
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PeerRecord:
        return cls(
            Manifest.from_dict(raw["manifest"]),
            int(raw["pinned_at"]),
            int(raw["updated_at"]),
            bool(raw["aligned"]),
            tuple(raw["reasons"]),
        )


@dataclass(frozen=True)
class HeldGrant:
    """A grant a peer issued to this node: the token to present, and what it allows."""

    token: str
    jti: str
    issuer: str
    expires_at: int
    scope: GrantScope
    constraints: Constraints
    received_at: int
    revoked_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "jti": self.jti,
            "issuer": self.issuer,
            "expires_at": self.expires_at,
            "scope": self.scope.to_claim(),
            "constraints": self.constraints.to_claim(),
            "received_at": self.received_at,
            "revoked_reason": self.revoked_reason,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> HeldGrant:
        return cls(
            raw["token"],
            raw["jti"],
            raw["issuer"],
            int(raw["expires_at"]),
            GrantScope.from_claim(raw["scope"]),
            Constraints.from_claim(raw["constraints"]),
            int(raw["received_at"]),
            raw.get("revoked_reason"),
        )


@dataclass(frozen=True)
class PeerRevocations:
    """A peer's revocation list as last verified, and when."""

    revocations: RevocationList
    fetched_at: int


def _own_list(raw: dict[str, Any], node_id: str) -> RevocationList:
    found = RevocationList.from_dict(raw)
    if found.issuer != node_id:
        raise ValueError(f"the revocation list belongs to {found.issuer}, not {node_id}")
    return found


def _peers_from(raw: dict[str, Any]) -> dict[str, PeerRecord]:
    return {peer_id: PeerRecord.from_dict(rec) for peer_id, rec in raw["peers"].items()}


def _peers_to(peers: dict[str, PeerRecord]) -> dict[str, Any]:
    return {"version": 1, "peers": {peer_id: rec.to_dict() for peer_id, rec in sorted(peers.items())}}


def _held_from(raw: dict[str, Any]) -> dict[str, HeldGrant]:
    return {jti: HeldGrant.from_dict(g) for jti, g in raw["grants"].items()}


def _held_to(held: dict[str, HeldGrant]) -> dict[str, Any]:
    return {"version": 1, "grants": {jti: g.to_dict() for jti, g in sorted(held.items())}}


def _peer_lists_from(raw: dict[str, Any]) -> dict[str, PeerRevocations]:
    return {
        peer: PeerRevocations(RevocationList.from_dict(v["list"]), int(v["fetched_at"]))
        for peer, v in raw["peers"].items()
    }


def _peer_lists_to(lists: dict[str, PeerRevocations]) -> dict[str, Any]:
    return {
        "version": 1,
        "peers": {p: {"list": v.revocations.to_dict(), "fetched_at": v.fetched_at} for p, v in lists.items()},
    }


class FederationState:
    """The node's federation files in one folder; safe to use from the node and the CLI at once."""

    def __init__(self, path: Path, node_id: str) -> None:
        self.folder = Folder(path)
        self.node_id = node_id
        self._peers = JsonDocument(self.folder, PEERS_FILE, parse=_peers_from, dump=_peers_to, empty=dict)
        self._revocations = JsonDocument(
            self.folder,
            "revocations.json",
            parse=lambda raw: _own_list(raw, node_id),
            dump=RevocationList.to_dict,
            empty=lambda: RevocationList(node_id),
        )
        self._held = JsonDocument(
            self.folder, "held-grants.json", parse=_held_from, dump=_held_to, empty=dict, secret=True
        )
        self._peer_lists = JsonDocument(
            self.folder, "peer-revocations.json", parse=_peer_lists_from, dump=_peer_lists_to, empty=dict
        )
        self.decisions = JsonLines(self.folder, "grant-decisions.jsonl")
        self._trust: tuple[dict[str, PeerRecord], TrustStore] | None = None

    def create(self) -> None:
        """Create the folder and an empty peers file (what `coopfed node init` does)."""
        if not self._peers.path.exists():
            self._peers.write({})

    # --- peers ---------------------------------------------------------------------------

    def peers(self) -> dict[str, PeerRecord]:
        return self._peers.read()

    def peer(self, peer_id: str) -> PeerRecord:
        record = self.peers().get(peer_id)
        if record is None:
            raise NotFound(f"no peer {peer_id!r} is pinned; join it first", code="federation.unknown_peer")
        return record

    def pin(self, record: PeerRecord) -> None:
        with self._peers.update() as box:
            box[0] = {**box[0], record.peer_id: record}

    def unpin(self, peer_id: str) -> None:
        with self._peers.update() as box:
            if peer_id not in box[0]:
                raise NotFound(f"no peer {peer_id!r} is pinned", code="federation.unknown_peer")
            box[0] = {p: r for p, r in box[0].items() if p != peer_id}

    def peer_trust(self) -> TrustStore:
        """The signing keys pinned for each peer (never this node's own)."""
        peers = self.peers()
        cached = self._trust
        if cached is not None and cached[0] is peers:
            return cached[1]
        trust = TrustStore({p: r.manifest.jwks for p, r in peers.items() if p != self.node_id})
        self._trust = (peers, trust)
        return trust

    def pinned_certificates(self) -> list[bytes]:
        return [r.manifest.tls_certificate_pem for r in self.peers().values()]

    # --- this node's revocations ---------------------------------------------------------

    def revocations(self) -> RevocationList:
        """Grants this node revoked, as on disk now (a revocation by the CLI is seen at once)."""
        return self._revocations.read()

    def revoke(self, jti: str, *, reason: str, expires_at: int) -> RevocationEntry:
        with self._revocations.update() as box:
            entry = box[0].revoke(jti, reason=reason, expires_at=expires_at)
            box[0].prune()
        return entry

    # --- decisions on peers' grant requests ----------------------------------------------

    def record_decision(self, record: dict[str, Any]) -> None:
        self.decisions.append({"at": int(time.time()), **record})

    def issued(self) -> list[dict[str, Any]]:
        """Grants this node issued, oldest first."""
        return [d["grant"] for d in self.decisions.read() if d.get("grant")]

    def issued_grant(self, jti: str) -> dict[str, Any]:
        for grant in self.issued():
            if grant["jti"] == jti:
                return grant
        raise NotFound(f"this node issued no grant {jti!r}", code="federation.unknown_grant")

    # --- grants held from peers ----------------------------------------------------------

    def held(self) -> dict[str, HeldGrant]:
        return self._held.read()

    def held_grant(self, jti: str) -> HeldGrant:
        grant = self.held().get(jti)
        if grant is None:
            raise NotFound(f"no grant {jti!r} is held from a peer", code="federation.unknown_grant")
        return grant

    def hold(self, grant: HeldGrant) -> None:
        with self._held.update() as box:
            box[0] = {**box[0], grant.jti: grant}

    # --- peers' revocation lists ---------------------------------------------------------

    def peer_revocations(self, peer_id: str) -> PeerRevocations | None:
        return self._peer_lists.read().get(peer_id)

    def store_peer_revocations(self, peer_id: str, revocations: RevocationList) -> list[str]:
        """Keep a peer's verified list; mark the grants held from it that it revokes.

        Returns the jtis of held grants newly marked revoked.
        """
        with self._peer_lists.update() as box:
            box[0] = {**box[0], peer_id: PeerRevocations(revocations, int(time.time()))}
        return self._mark_revoked(peer_id, revocations)

    def _mark_revoked(self, issuer: str, revocations: RevocationList) -> list[str]:
        marked: list[str] = []
        with self._held.update() as box:
            for jti, grant in box[0].items():
                if grant.issuer == issuer and grant.revoked_reason is None and jti in revocations:
                    box[0][jti] = replace(grant, revoked_reason=revocations.reason_for(jti) or "")
                    marked.append(jti)
        return marked


def issued_record(
    jti: str, subject: str, expires_at: int, scope: GrantScope, constraints: Constraints
) -> dict[str, Any]:
    return {
        "jti": jti,
        "subject": subject,
        "expires_at": expires_at,
        "scope": scope.to_claim(),
        "constraints": constraints.to_claim(),
    }
