"""Witnessing: aligned peers keep each other's signed decision-log heads (see coopfed.node.loghead)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from coopfed.node.errors import FailedPrecondition
from coopfed.node.federation.client import PeerClient
from coopfed.node.federation.issuer import federation_of
from coopfed.node.loghead import SignedHead, verify_head
from coopfed.v1 import federation_pb2

if TYPE_CHECKING:
    from coopfed.node.runtime import Node
    from coopfed.node.storage.governance import GovernanceStore

log = logging.getLogger(__name__)
MAX_WITNESSED = 16  # the highest heads show a cut or a rewrite; older ones add nothing to a check


def _log_of(node: Node) -> GovernanceStore:
    if node.governance is None:
        raise FailedPrecondition("this node keeps no decision log to witness", code="witness.no_log")
    return node.governance


def keep(node: Node, peer_id: str, token: str) -> SignedHead:
    """Verify a peer's head against its pinned keys and keep it; warn when it contradicts one kept."""
    head = verify_head(token, federation_of(node).state.peer_trust(), peer_id)
    for earlier in _log_of(node).heads_of(peer_id, 1):
        top = verify_head(earlier, federation_of(node).state.peer_trust(), peer_id)
        if head.seq < top.seq or (head.seq == top.seq and head.hash != top.hash):
            log.warning(
                "peer %s signed a head (entry %d) behind or beside one it signed before (entry %d): "
                "its decision log was cut or rewritten",
                peer_id, head.seq, top.seq,
            )  # fmt: skip
    _log_of(node).keep_head(peer_id, head.seq, head.hash, token, datetime.now(UTC))
    return head


def exchange(node: Node, peer_id: str, head: str) -> federation_pb2.ExchangeLogHeadsResponse:
    """The callee's side: keep the caller's head (if it sent one), show ours and what we hold of its."""
    if head:
        keep(node, peer_id, head)
    return federation_pb2.ExchangeLogHeadsResponse(
        head=_log_of(node).signed_head(), witnessed=_log_of(node).heads_of(peer_id, MAX_WITNESSED)
    )


async def exchange_with(node: Node, client: PeerClient) -> None:
    """The caller's side, at every refresh: show our head, keep the peer's."""
    reply = await client.exchange_heads(_log_of(node).signed_head())
    if reply.head:
        keep(node, client.peer.peer_id, reply.head)
