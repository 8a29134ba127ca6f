"""Witnessing: aligned peers keep each other's signed decision-log heads (see coopfed.node.loghead)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from coopfed.node.federation.client import PeerClient
from coopfed.node.federation.state import FederationState
from coopfed.node.loghead import SignedHead, verify_head
from coopfed.node.storage.governance import GovernanceStore
from coopfed.v1 import federation_pb2

log = logging.getLogger(__name__)
MAX_WITNESSED = 16  # the highest heads show a cut or a rewrite; older ones add nothing to a check


def keep(governance: GovernanceStore, state: FederationState, peer_id: str, token: str) -> SignedHead:
    """Verify a peer's head against its pinned keys and keep it; warn when it contradicts one kept."""
    head = verify_head(token, state.peer_trust(), peer_id)
    for earlier in governance.heads_of(peer_id, 1):
        top = verify_head(earlier, state.peer_trust(), peer_id)
        if head.seq < top.seq or (head.seq == top.seq and head.hash != top.hash):
            log.warning(
                "peer %s signed a head (entry %d) behind or beside one it signed before (entry %d): "
                "its decision log was cut or rewritten",
                peer_id, head.seq, top.seq,
            )  # fmt: skip
    governance.keep_head(peer_id, head.seq, head.hash, token, datetime.now(UTC))
    return head


def exchange(
    governance: GovernanceStore, state: FederationState, peer_id: str, head: str
) -> federation_pb2.ExchangeLogHeadsResponse:
    """The callee's side: keep the caller's head (if it sent one), show ours and what we hold of its."""
    if head:
        keep(governance, state, peer_id, head)
    return federation_pb2.ExchangeLogHeadsResponse(
        head=governance.signed_head(), witnessed=governance.heads_of(peer_id, MAX_WITNESSED)
    )


async def exchange_with(governance: GovernanceStore, state: FederationState, client: PeerClient) -> None:
    """The caller's side, at every refresh: show our head, keep the peer's."""
    reply = await client.exchange_heads(await asyncio.to_thread(governance.signed_head))
    if reply.head:
        await asyncio.to_thread(keep, governance, state, client.peer.peer_id, reply.head)
