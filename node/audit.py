"""Auditing a node's decision log against its own signed head and its witnesses' copies.

The chain alone shows an edit in the middle; it cannot show a log cut at its end, rewritten
from some entry on with every later hash recomputed, or extended with entries the node never
wrote. The node's signed head shows the last (it signs every head it writes), and the heads
aligned peers were shown (and keep) show the first two, even when the operator who edits the
database also holds the node's key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import grpc

from coopfed.federation.errors import TokenError
from coopfed.federation.keys import KeyRing, TrustStore
from coopfed.node.decisionlog import Head, Problem, Report, verify
from coopfed.node.federation.client import PeerClient
from coopfed.node.federation.context import open_federation
from coopfed.node.loghead import verify_head
from coopfed.node.settings import Settings
from coopfed.node.storage.federation import FederationStore


@dataclass
class Witnesses:
    """What each pinned peer holds of this node's log (signed heads), and who could not be asked."""

    heads: dict[str, list[str]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


async def ask_witnesses(settings: Settings, ring: KeyRing, state: FederationStore) -> Witnesses:
    """Ask every pinned peer, over its peer port with this node's TLS identity and key."""
    fed = open_federation(settings, state)
    found = Witnesses()
    for record in fed.state.peers().values():
        try:
            async with PeerClient(fed, ring, record) as client:
                reply = await client.exchange_heads("")
        except grpc.aio.AioRpcError as exc:
            found.failures[record.peer_id] = f"{exc.code().name}: {exc.details()}"
        else:
            found.heads[record.peer_id] = list(reply.witnessed)
    return found


def audit(
    entries: Iterable[str],
    *,
    node_id: str,
    trust: TrustStore,
    signed: str,
    witnessed: Mapping[str, list[str]],
    head: tuple[int, str] | None = None,
) -> Report:
    """Verify the log's chain, then against its signed head and every witness's heads."""
    problems: list[Problem] = []
    own = None
    if signed:
        try:
            mine = verify_head(signed, trust, node_id)
            own = Head(mine.seq, mine.hash, "the last head this node signed")
        except TokenError as exc:
            problems.append(
                Problem("unsigned", 0, None, "", f"the log's head is not signed by this node's key ({exc})")
            )
    heads = []
    for witness, tokens in witnessed.items():
        for token in tokens:
            try:
                theirs = verify_head(token, trust, node_id)
            except TokenError as exc:
                message = f"{witness} holds a head of this log not signed by this node's key ({exc})"
                problems.append(Problem("unsigned", 0, None, "", message))
                continue
            heads.append(Head(theirs.seq, theirs.hash, f"the head {witness} keeps as witness"))
    report = verify(entries, head=head, heads=heads, signed=own)
    if report.entries and not signed:
        message = f"the log's head (entry {report.head_seq}) carries no signature of this node"
        problems.append(Problem("unsigned", report.entries, None, "", message))
    problems = [dataclasses.replace(p, position=p.position or report.entries) for p in problems]
    every = sorted([*report.problems, *problems], key=lambda p: (p.position, p.kind))
    return dataclasses.replace(report, problems=tuple(every))
