"""Aggregates released to a peer: the grant's scope checked, then the one release pipeline.

Consent is asked once per profile, totals come from per-profile running totals, cells under k
are withheld and the grant's noise is added (see `coopfed.node.release`); the access log gets
one entry per member and dataset released, in one transaction, before data leaves.
"""

from __future__ import annotations

from collections.abc import Sequence

from coopfed.federation.grants import Grant, Granularity
from coopfed.node.errors import InvalidArgument
from coopfed.node.federation.state import FederationState
from coopfed.node.model import HALF_HOUR, Flow
from coopfed.node.release import pipeline
from coopfed.node.release.pipeline import Ask, Cells, Recipient, Release, ReleasePipeline
from coopfed.node.storage import Capacity
from coopfed.node.storage.governance import GrantKind

RELEASE_PATH = "coopfed/federation/release"
Series = Cells  # a peer's name for one dataset's released cells

__all__ = ["RELEASE_PATH", "PeerReleases", "Release", "Series"]


class PeerReleases:
    """Releases under grants this node issued to peers, checked against those grants."""

    def __init__(self, state: FederationState, pipeline: ReleasePipeline) -> None:
        self.state, self.pipeline = state, pipeline

    def plan(
        self,
        grant: Grant,
        datasets: tuple[str, ...],
        period: tuple[int, int] | None,
        recipient: tuple[str, str] = ("", ""),
    ) -> Release:
        """Check the call against the grant (PERMISSION_DENIED beyond it) and ask consent per
        profile. `recipient` is the peer's (id, name), as members' access logs will name it."""
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
        ask = Ask(
            Flow.COOP_TO_COOP.value, scope.purpose, datasets, (start, end), tuple(sorted(scope.fields)),
            Granularity.AGGREGATE.value, grant.constraints.min_group_size, grant.constraints.noise,
        )  # fmt: skip
        to = Recipient(
            GrantKind.FEDERATION, grant.jti, *recipient, decision_id=self._grant_decision_id(grant.jti)
        )
        return self.pipeline.plan(ask, to, grant)

    def log(self, release: Release) -> Release:
        """Record the release in the decision log before any data leaves; its decision_id names it."""
        question = {"grant_id": release.recipient.grant_id, "peer": release.recipient.id}
        return self.pipeline.record(release, RELEASE_PATH, question)

    def series(self, release: Release, dataset: str) -> Series:
        """Totals over the consenting profiles; cells with fewer than k members are withheld."""
        return self.pipeline.cells(release, dataset)

    def capacity(self, release: Release) -> Capacity | None:
        """The capacity behind released generation kWh, which lets a peer read them per installed
        kW; none beside noisy totals, where an exact kW would narrow what the noise hides."""
        ask = release.ask
        if (
            "generation" not in ask.datasets
            or "kwh" not in ask.fields
            or ask.noise
            or ask.epsilon is not None
        ):
            return None
        return self.pipeline.declared_capacity(release.consenting["generation"], release.min_group_size)

    def log_access(self, release: Release, released: Sequence[Series]) -> int:
        """Before any data leaves: the access-log entries for the released cells; returns how many members."""
        return self.pipeline.log_access(release, released)

    def check_live(self, grant: Grant) -> None:
        """Before every message: a grant revoked or expired since the call began stops the stream."""
        pipeline.check_live(grant, self.state.revocations())

    def _grant_decision_id(self, jti: str) -> str:
        """The decision-log id of the grant decision that issued `jti`, "" if this node has none."""
        record = self.state.decision_for(jti)
        return str(record.get("decision_id", "")) if record else ""
