"""The federation storage interface: pinned peers, this node's revocations, its grant decisions,
the grants it holds from peers and the peers' revocation lists.

Peer records, decisions and held grants are JSON objects whose shape the federation code owns;
the store keeps them whole and reads only the keys named here. Every write is one transaction,
so the node and the CLI can change federation state at once and lose no update.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from coopfed.federation.revocation import RevocationEntry, RevocationList

Record = dict[str, Any]


@dataclass(frozen=True)
class FederationSnapshot:
    """All federation state at once: what a co-op's old state files held, imported in one go."""

    peers: Mapping[str, Record] = field(default_factory=dict)
    revocations: RevocationList | None = None
    decisions: Sequence[Record] = ()
    held: Mapping[str, Record] = field(default_factory=dict)
    peer_revocations: Mapping[str, tuple[RevocationList, int]] = field(default_factory=dict)


class FederationStore(abc.ABC):
    """Federation state in the node's database, shared by the running node and the CLI."""

    # pinned peers
    @abc.abstractmethod
    def peers(self) -> dict[str, Record]:
        """Every pinned peer's record, by peer id."""

    @abc.abstractmethod
    def peers_version(self) -> int:
        """A number that changes whenever a peer is pinned, re-pinned or unpinned (cheap to ask)."""

    @abc.abstractmethod
    def pin(self, peer_id: str, record: Record) -> None:
        """Pin `peer_id`, replacing its record if it is pinned already."""

    @abc.abstractmethod
    def unpin(self, peer_id: str) -> bool:
        """Unpin `peer_id`; False if it was not pinned."""

    # this node's revocation list
    @abc.abstractmethod
    def revocations(self, issuer: str) -> RevocationList:
        """This node's revocation list (`issuer` is this node's id)."""

    @abc.abstractmethod
    def revocation_sequence(self) -> int:
        """The sequence of this node's revocation list: it changes with every change (cheap to ask)."""

    @abc.abstractmethod
    def revoke(self, issuer: str, jti: str, *, reason: str, expires_at: int) -> RevocationEntry:
        """Revoke `jti` (idempotent: the first entry stays) and prune entries that can no longer
        verify, with RevocationList's rules for the sequence number."""

    # decisions on peers' grant requests
    @abc.abstractmethod
    def record_decision(self, record: Record) -> None:
        """Append a decision; `record["grant"]["jti"]` names the grant issued, if one was."""

    @abc.abstractmethod
    def decisions(self) -> list[Record]:
        """Every decision, oldest first."""

    @abc.abstractmethod
    def decision_for(self, jti: str) -> Record | None:
        """The latest decision that issued grant `jti`, if any."""

    # grants held from peers
    @abc.abstractmethod
    def held(self) -> dict[str, Record]:
        """Held grants by jti; each record has `jti`, `issuer` and `revoked_reason` (None if live)."""

    @abc.abstractmethod
    def hold(self, record: Record) -> None:
        """Keep a held grant, replacing any with the same jti."""

    # peers' revocation lists
    @abc.abstractmethod
    def peer_revocations(self, peer_id: str) -> tuple[RevocationList, int] | None:
        """A peer's list as last stored, and when it was fetched (unix seconds)."""

    @abc.abstractmethod
    def store_peer_revocations(self, peer_id: str, revocations: RevocationList, fetched_at: int) -> list[str]:
        """Keep a peer's verified list and, in the same transaction, mark the live grants held
        from it that it revokes; returns the jtis newly marked."""

    # an upgrading co-op's state files
    @abc.abstractmethod
    def import_snapshot(self, snapshot: FederationSnapshot) -> bool:
        """Store `snapshot` in one transaction if the store holds no federation state yet;
        False (and nothing written) if it holds some already."""
