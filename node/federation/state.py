"""What a node keeps about the federation: pinned peers, its grant decisions and revocations,
the grants it holds from peers and the peers' revocation lists, in the node's federation store.

A co-op upgrading from a release that kept these in JSON files in its federation folder has
them imported into the store once, on first open (`import_files`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coopfed.federation.grants import Constraints, GrantScope
from coopfed.federation.keys import TrustStore
from coopfed.federation.revocation import RevocationEntry, RevocationList
from coopfed.node.errors import FailedPrecondition, NotFound
from coopfed.node.federation.manifest import Manifest
from coopfed.node.storage.federation import FederationSnapshot, FederationStore

log = logging.getLogger(__name__)
# The state files of earlier releases, imported once into the store (see import_files).
LEGACY_FILES = (
    "peers.json",
    "revocations.json",
    "grant-decisions.jsonl",
    "held-grants.json",
    "peer-revocations.json",
)


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


class FederationState:
    """The node's federation state over its store; safe to use from the node and the CLI at once
    (each change is one transaction, and every read sees what the other process committed)."""

    def __init__(self, store: FederationStore, node_id: str) -> None:
        self.store = store
        self.node_id = node_id
        self._lock = threading.Lock()
        self._peers: tuple[int, dict[str, PeerRecord], TrustStore] | None = None  # by peers_version
        self._revoked: RevocationList | None = None  # read again when its sequence changed

    # --- peers ---------------------------------------------------------------------------

    def _pinned(self) -> tuple[dict[str, PeerRecord], TrustStore]:
        """Peers and their keys, parsed again only when the store's peers changed."""
        version = self.store.peers_version()
        with self._lock:
            cached = self._peers
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        try:
            peers = {p: PeerRecord.from_dict(r) for p, r in self.store.peers().items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise _corrupt("a pinned peer's record", exc) from exc
        trust = TrustStore({p: r.manifest.jwks for p, r in peers.items() if p != self.node_id})
        with self._lock:
            self._peers = (version, peers, trust)
        return peers, trust

    def peers(self) -> dict[str, PeerRecord]:
        return self._pinned()[0]

    def peer(self, peer_id: str) -> PeerRecord:
        record = self.peers().get(peer_id)
        if record is None:
            raise NotFound(f"no peer {peer_id!r} is pinned; join it first", code="federation.unknown_peer")
        return record

    def pin(self, record: PeerRecord) -> None:
        self.store.pin(record.peer_id, record.to_dict())

    def unpin(self, peer_id: str) -> None:
        if not self.store.unpin(peer_id):
            raise NotFound(f"no peer {peer_id!r} is pinned", code="federation.unknown_peer")

    def peer_trust(self) -> TrustStore:
        """The signing keys pinned for each peer (never this node's own)."""
        return self._pinned()[1]

    def pinned_certificates(self) -> list[bytes]:
        return [r.manifest.tls_certificate_pem for r in self.peers().values()]

    # --- this node's revocations ---------------------------------------------------------

    def revocations(self) -> RevocationList:
        """Grants this node revoked, as stored now (a revocation by the CLI is seen at once).
        Shared between callers: read it, never change it (revoke() changes the store)."""
        sequence = self.store.revocation_sequence()
        with self._lock:
            cached = self._revoked
        if cached is not None and cached.sequence == sequence:
            return cached
        found = self.store.revocations(self.node_id)
        with self._lock:
            self._revoked = found
        return found

    def revoke(self, jti: str, *, reason: str, expires_at: int) -> RevocationEntry:
        return self.store.revoke(self.node_id, jti, reason=reason, expires_at=expires_at)

    # --- decisions on peers' grant requests ----------------------------------------------

    def record_decision(self, record: dict[str, Any]) -> None:
        self.store.record_decision({"at": int(time.time()), **record})

    def decisions(self) -> list[dict[str, Any]]:
        """Every decision on a peer's grant request, oldest first."""
        return self.store.decisions()

    def decision_for(self, jti: str) -> dict[str, Any] | None:
        """The decision that issued grant `jti`, if this node issued it."""
        return self.store.decision_for(jti)

    def issued(self) -> list[dict[str, Any]]:
        """Grants this node issued, oldest first."""
        return [d["grant"] for d in self.decisions() if d.get("grant")]

    def issued_grant(self, jti: str) -> dict[str, Any]:
        decision = self.decision_for(jti)
        if decision is None:
            raise NotFound(f"this node issued no grant {jti!r}", code="federation.unknown_grant")
        return dict(decision["grant"])

    # --- grants held from peers ----------------------------------------------------------

    def held(self) -> dict[str, HeldGrant]:
        try:
            return {jti: HeldGrant.from_dict(g) for jti, g in self.store.held().items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise _corrupt("a held grant", exc) from exc

    def held_grant(self, jti: str) -> HeldGrant:
        grant = self.held().get(jti)
        if grant is None:
            raise NotFound(f"no grant {jti!r} is held from a peer", code="federation.unknown_grant")
        return grant

    def hold(self, grant: HeldGrant) -> None:
        self.store.hold(grant.to_dict())

    # --- peers' revocation lists ---------------------------------------------------------

    def peer_revocations(self, peer_id: str) -> PeerRevocations | None:
        found = self.store.peer_revocations(peer_id)
        return PeerRevocations(*found) if found is not None else None

    def store_peer_revocations(self, peer_id: str, revocations: RevocationList) -> list[str]:
        """Keep a peer's verified list; mark the grants held from it that it revokes.

        Returns the jtis of held grants newly marked revoked.
        """
        return self.store.store_peer_revocations(peer_id, revocations, int(time.time()))


def _corrupt(what: str, exc: Exception) -> FailedPrecondition:
    return FailedPrecondition(
        f"{what} in the federation store is corrupt: {exc}", code="federation.state_corrupt"
    )


# --- the state files of earlier releases -----------------------------------------------------


def import_files(folder: Path, store: FederationStore, node_id: str) -> bool:
    """Import the federation folder's state files into an empty store, then set them aside
    (renamed `*.imported`) so they are neither read again nor mistaken for live state.

    All or nothing: a file that cannot be read stops the import (and the node) with its name,
    and the store is left as it was. Returns True if files were imported.
    """
    present = [name for name in LEGACY_FILES if (folder / name).exists()]
    if not present:
        return False
    snapshot = _read_files(folder, node_id)
    imported = store.import_snapshot(snapshot)
    if imported:
        log.info("federation state imported from %s: %s", folder, ", ".join(present))
    else:
        log.warning("federation store holds state already; %s set aside unread", ", ".join(present))
    for name in present:
        with contextlib.suppress(FileNotFoundError):  # another process set it aside first
            (folder / name).rename(folder / f"{name}.imported")
    return imported


def _read_files(folder: Path, node_id: str) -> FederationSnapshot:
    def read(name: str, parse: Callable[[Any], Any], empty: Any) -> Any:
        path = folder / name
        try:
            text = path.read_text("utf-8")
            lines = name.endswith(".jsonl")
            return parse(
                [json.loads(line) for line in text.splitlines() if line.strip()]
                if lines
                else json.loads(text)
            )
        except FileNotFoundError:  # never there, or set aside by a process that imported it
            return empty
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _corrupt_file(path, exc) from exc

    return FederationSnapshot(
        peers=read(
            "peers.json",
            lambda raw: {p: PeerRecord.from_dict(r).to_dict() for p, r in raw["peers"].items()},
            {},
        ),
        revocations=read("revocations.json", lambda raw: _own_list(raw, node_id), None),
        decisions=read("grant-decisions.jsonl", list, []),
        held=read(
            "held-grants.json",
            lambda raw: {j: HeldGrant.from_dict(g).to_dict() for j, g in raw["grants"].items()},
            {},
        ),
        peer_revocations=read(
            "peer-revocations.json",
            lambda raw: {
                p: (RevocationList.from_dict(v["list"]), int(v["fetched_at"]))
                for p, v in raw["peers"].items()
            },
            {},
        ),
    )


def _own_list(raw: dict[str, Any], node_id: str) -> RevocationList:
    found = RevocationList.from_dict(raw)
    if found.issuer != node_id:
        raise ValueError(f"the revocation list belongs to {found.issuer}, not {node_id}")
    return found


def _corrupt_file(path: Path, exc: Exception) -> FailedPrecondition:
    return FailedPrecondition(
        f"federation state file {path} is unreadable or corrupt, nothing was imported: {exc}",
        code="federation.state_corrupt",
    )


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
