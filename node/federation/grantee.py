"""The requesting side: joining a peer, obtaining grants from it and fetching aggregates."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coopfed.federation.errors import UnknownKey
from coopfed.federation.grants import verify_grant
from coopfed.federation.keys import KeyRing
from coopfed.node.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from coopfed.node.federation import convert
from coopfed.node.federation.aggregates import Series
from coopfed.node.federation.client import FirstContact, PeerClient, first_contact
from coopfed.node.federation.context import Federation
from coopfed.node.federation.decide import Alignment, GrantAsk, decide_alignment
from coopfed.node.federation.refresh import repin
from coopfed.node.federation.state import HeldGrant, PeerRecord
from coopfed.node.policy.holder import PolicyHolder
from coopfed.v1 import common_pb2, federation_pb2


@dataclass(frozen=True)
class JoinPreview:
    """What an operator is shown before pinning a peer."""

    contact: FirstContact
    alignment: Alignment


@dataclass(frozen=True)
class Aggregates:
    """A fetch: its header, one series per dataset (parts joined) and its summary."""

    header: federation_pb2.AggregatesHeader
    series: dict[str, Series]
    summary: federation_pb2.AggregatesSummary


class Grantee:
    """The requesting side of this node: joining peers, obtaining grants, fetching aggregates."""

    def __init__(self, fed: Federation, keys: KeyRing, policy: PolicyHolder) -> None:
        self.fed, self.keys, self.policy = fed, keys, policy

    async def preview_join(
        self, address: str, *, plaintext: bool = False, ca: Path | None = None
    ) -> JoinPreview:
        """Fetch the peer's manifest and ask the federation policy whether it is aligned."""
        contact = await first_contact(address, plaintext=plaintext, ca=ca)
        node_id = self.fed.node_id
        if contact.manifest.coop_id == node_id:
            raise InvalidArgument(
                f"{address} is this node ({node_id}); a node cannot join itself", code="join.self"
            )
        return JoinPreview(contact, decide_alignment(self.policy, contact.manifest))

    def pin(self, preview: JoinPreview, *, allow_unaligned: bool = False) -> PeerRecord:
        """Pin the peer's keys and certificate, once a person compared the fingerprints.

        A peer the policy finds unaligned is refused with the policy's reasons, unless the operator
        pins it anyway (its identity becomes known; every grant request is still decided by policy).
        """
        alignment = preview.alignment
        if not alignment.aligned and not allow_unaligned:
            raise PermissionDenied(
                f"{preview.contact.manifest.name} is not aligned with this co-op: "
                + " ".join(alignment.reasons),
                code="federation.not_aligned",
            )
        now = int(time.time())
        record = PeerRecord(preview.contact.manifest, now, now, alignment.aligned, alignment.reasons)
        self.fed.state.pin(record)
        return record

    async def obtain_grant(self, peer_id: str, ask: GrantAsk) -> tuple[HeldGrant, list[str]]:
        """Ask a pinned peer for a grant; keep it once it verifies as the peer's grant to this node."""
        state = self.fed.state
        peer = await asyncio.to_thread(state.peer, peer_id)
        async with PeerClient(self.fed, self.keys, peer) as client:
            reply = await client.request_grant(convert.ask_to_proto(ask))
        try:
            grant = verify_grant(reply.token, trust=state.peer_trust(), audience=peer_id, issuer=peer_id)
        except UnknownKey:  # signed with a key the peer added since it was last refreshed
            await repin(self.fed, self.keys, self.policy, peer_id)
            grant = verify_grant(reply.token, trust=state.peer_trust(), audience=peer_id, issuer=peer_id)
        if grant.subject != self.fed.node_id:
            raise FailedPrecondition(
                f"{peer_id} issued the grant to {grant.subject!r}", code="federation.subject"
            )
        held = HeldGrant(
            reply.token,
            grant.jti,
            grant.issuer,
            grant.expires_at,
            grant.scope,
            grant.constraints,
            int(time.time()),
        )
        await asyncio.to_thread(state.hold, held)
        return held, list(reply.reasons)

    async def fetch_aggregates(
        self, jti: str, *, datasets: tuple[str, ...] = (), period: tuple[int, int] | None = None
    ) -> Aggregates:
        """Fetch what a held grant allows from its issuer."""
        state = self.fed.state
        held = await asyncio.to_thread(state.held_grant, jti)
        usable(held)
        request = federation_pb2.FetchAggregatesRequest(datasets=list(datasets))
        if period is not None:
            request.period.CopyFrom(common_pb2.Period(start_unix=period[0], end_unix=period[1]))
        header, summary = federation_pb2.AggregatesHeader(), federation_pb2.AggregatesSummary()
        parts: dict[str, list[Series]] = {}
        issuer = await asyncio.to_thread(state.peer, held.issuer)
        async with PeerClient(self.fed, self.keys, issuer) as client:
            async for chunk in client.fetch(held.token, request):
                kind = chunk.WhichOneof("content")
                if kind == "header":
                    header = chunk.header
                elif kind == "series":
                    parts.setdefault(chunk.series.dataset, []).append(convert.series_from_proto(chunk.series))
                elif kind == "summary":
                    summary = chunk.summary
        return Aggregates(header, {ds: _join(ds, ps) for ds, ps in parts.items()}, summary)


def usable(held: HeldGrant, now: int | None = None) -> None:
    """Refuse, without calling the issuer, a grant its issuer revoked (as of the last refresh)
    or that has expired."""
    if held.revoked_reason is not None:
        raise PermissionDenied(
            f"grant {held.jti} was revoked by {held.issuer}: {held.revoked_reason or 'no reason given'}",
            code="federation.grant_revoked",
        )
    if held.expires_at <= (int(time.time()) if now is None else now):
        raise FailedPrecondition(
            f"grant {held.jti} has expired; request a new one", code="federation.expired"
        )


def _join(dataset: str, parts: list[Series]) -> Series:
    if len(parts) == 1:
        return parts[0]

    def cat(arrays: list[np.ndarray | None]) -> np.ndarray | None:
        return None if any(a is None for a in arrays) else np.concatenate(arrays)  # type: ignore[arg-type]

    return Series(
        dataset,
        np.concatenate([p.periods for p in parts]),
        cat([p.kwh for p in parts]),
        cat([p.member_count for p in parts]),
        np.concatenate([p.suppressed for p in parts]),
    )
