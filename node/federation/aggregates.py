"""Aggregates released to a peer: the grant's scope checked, then the one release pipeline.

Consent is asked once per profile, totals come from per-profile running totals, cells under k
are withheld and the grant's noise is added (see `coopfed.node.release`); the access log gets
one entry per member and dataset released, in one transaction, before data leaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from coopfed.federation.grants import Grant, Granularity
from coopfed.node.errors import InvalidArgument
from coopfed.node.federation.issuer import federation_of
from coopfed.node.model import HALF_HOUR, Flow
from coopfed.node.release import pipeline
from coopfed.node.release.pipeline import Cells, Recipient, Release
from coopfed.node.storage import Capacity
from coopfed.node.storage.governance import GrantKind

if TYPE_CHECKING:
    from coopfed.node.runtime import Node

RELEASE_PATH = "coopfed/federation/release"
Series = Cells  # a peer's name for one dataset's released cells

__all__ = [
    "RELEASE_PATH", "Release", "Series", "check_live", "log_access", "log_release", "plan_release",
    "release_capacity", "release_series",
]  # fmt: skip


class PeerRevocations:
    """Grants this node issued to peers and revoked since, as stored now."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def reason_for(self, jti: str) -> str | None:
        return federation_of(self._node).state.revocations().reason_for(jti)


def plan_release(
    node: Node,
    grant: Grant,
    datasets: tuple[str, ...],
    period: tuple[int, int] | None,
    recipient: tuple[str, str] = ("", ""),
) -> Release:
    """Check the call against the grant (PERMISSION_DENIED beyond it) and ask consent per profile.
    `recipient` is the peer's (id, name), as members' access logs will name it."""
    scope = grant.scope
    datasets = datasets or tuple(sorted(scope.datasets))
    if len(set(datasets)) != len(datasets):
        raise InvalidArgument("datasets: each dataset once", code="fetch.datasets", field="datasets")
    start, end = period or (scope.period_start, scope.period_end)
    if start % HALF_HOUR or end % HALF_HOUR or start >= end:
        raise InvalidArgument(
            "period: half-hour aligned, start before end", code="fetch.period", field="period"
        )
    # Only coop_to_coop grants release here: a third party's grant fails on its flow.
    grant.check(
        datasets=datasets,
        period_start=start,
        period_end=end,
        flow=Flow.COOP_TO_COOP.value,
        purpose=scope.purpose,
        granularity=Granularity.AGGREGATE,
    )
    ask = pipeline.Ask(
        Flow.COOP_TO_COOP.value, scope.purpose, datasets, (start, end), tuple(sorted(scope.fields)),
        Granularity.AGGREGATE.value, grant.constraints.min_group_size, grant.constraints.noise,
    )  # fmt: skip
    to = Recipient(
        GrantKind.FEDERATION, grant.jti, *recipient, decision_id=_grant_decision_id(node, grant.jti)
    )
    return pipeline.plan(node, ask, to, grant)


def log_release(node: Node, release: Release) -> Release:
    """Record the release in the decision log before any data leaves; its decision_id names it."""
    question = {"grant_id": release.recipient.grant_id, "peer": release.recipient.id}
    return pipeline.record(node, release, RELEASE_PATH, question)


def release_series(node: Node, release: Release, dataset: str) -> Series:
    """Totals over the consenting profiles; cells with fewer than k members are withheld."""
    return pipeline.cells(node, release, dataset)


def release_capacity(node: Node, release: Release) -> Capacity | None:
    """The capacity behind released generation kWh, which lets a peer read them per installed kW;
    none beside noisy totals, where an exact kW would narrow what the noise hides."""
    ask = release.ask
    if "generation" not in ask.datasets or "kwh" not in ask.fields or ask.noise or ask.epsilon is not None:
        return None
    return pipeline.declared_capacity(node, release.consenting["generation"], release.min_group_size)


def log_access(node: Node, release: Release, released: Sequence[Series]) -> int:
    """Before any data leaves: the access-log entries for the released cells; returns how many members."""
    return len(pipeline.log_access(node, release, released))


def check_live(node: Node, grant: Grant) -> None:
    """Before every message: a grant revoked or expired since the call began stops the stream."""
    pipeline.check_live(grant, PeerRevocations(node))


def _grant_decision_id(node: Node, jti: str) -> str:
    """The decision-log id of the grant decision that issued `jti`, "" if this node has none."""
    if node.federation is None:
        return ""
    record = node.federation.state.decision_for(jti)
    return str(record.get("decision_id", "")) if record else ""
