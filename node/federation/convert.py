"""Protobuf <-> domain conversion for the federation service, in one place."""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from coopfed.federation.grants import Grant, Granularity
from coopfed.node import limits
from coopfed.node.convert import (
    flow_to_proto,
    granularity_from_proto,
    granularity_to_proto,
    period_from_proto,
)
from coopfed.node.errors import InvalidArgument
from coopfed.node.federation.aggregates import Release, Series
from coopfed.node.federation.decide import GrantAsk
from coopfed.node.model import Flow
from coopfed.node.storage import Capacity
from coopfed.v1 import common_pb2, federation_pb2

_MAX_NAMES = 16
_MAX_NAME_LENGTH = limits.IDENTIFIER


def names(values: Any, field: str) -> tuple[str, ...]:
    """A short list of short names, each once."""
    found = tuple(values)
    if len(found) > _MAX_NAMES or any(not v or len(v) > _MAX_NAME_LENGTH for v in found):
        raise InvalidArgument(
            f"{field}: at most {_MAX_NAMES} names of 1 to {_MAX_NAME_LENGTH} characters",
            code="grant.names",
            field=field,
        )
    if len(set(found)) != len(found):
        raise InvalidArgument(f"{field}: each name once", code="grant.names", field=field)
    return found


def ask_from_proto(msg: federation_pb2.PeerGrantRequest) -> GrantAsk:
    if not msg.HasField("period"):
        raise InvalidArgument("period: required", code="grant.period", field="period")
    start, end = period_from_proto(msg.period, code="grant.period")
    if not msg.purpose or len(msg.purpose) > 200:
        raise InvalidArgument("purpose: a purpose code is required", code="grant.purpose", field="purpose")
    if msg.min_group_size < 0:
        raise InvalidArgument(
            "min_group_size: 0 or more", code="grant.min_group_size", field="min_group_size"
        )
    datasets = names(msg.datasets, "datasets")
    if not datasets:
        raise InvalidArgument("datasets: at least one", code="grant.datasets", field="datasets")
    return GrantAsk(
        datasets=datasets,
        fields=names(msg.fields, "fields"),
        granularity=(
            granularity_from_proto(msg.granularity, code="grant.granularity") or Granularity.AGGREGATE
        ).value,
        flow=Flow.COOP_TO_COOP.value,
        purpose=msg.purpose,
        period_start=start,
        period_end=end,
        min_group_size=msg.min_group_size,
    )


def ask_to_proto(ask: GrantAsk) -> federation_pb2.PeerGrantRequest:
    return federation_pb2.PeerGrantRequest(
        datasets=list(ask.datasets),
        fields=list(ask.fields),
        granularity=granularity_to_proto(ask.granularity),
        period=common_pb2.Period(start_unix=ask.period_start, end_unix=ask.period_end),
        purpose=ask.purpose,
        min_group_size=ask.min_group_size,
    )


def grant_to_proto(grant: Grant) -> federation_pb2.PeerGrant:
    scope = grant.scope
    return federation_pb2.PeerGrant(
        grant_id=grant.jti,
        issuer=grant.issuer,
        subject=grant.subject,
        issued_at=Timestamp(seconds=grant.issued_at),
        expires_at=Timestamp(seconds=grant.expires_at),
        datasets=sorted(scope.datasets),
        fields=sorted(scope.fields),
        granularity=granularity_to_proto(scope.granularity),
        period=common_pb2.Period(start_unix=scope.period_start, end_unix=scope.period_end),
        purpose=scope.purpose,
        flow=flow_to_proto(Flow(scope.flow)),
        min_group_size=grant.constraints.min_group_size,
    )


def header_to_proto(
    release: Release, policy_hash: str, decision_id: str, installed: Capacity | None = None
) -> federation_pb2.AggregatesChunk:
    grant = release.grant
    assert grant is not None  # a peer's release is always under a grant
    noise = grant.constraints.noise
    header = federation_pb2.AggregatesHeader(
        grant_id=grant.jti,
        issuer=grant.issuer,
        period=common_pb2.Period(start_unix=release.period[0], end_unix=release.period[1]),
        datasets=list(release.datasets),
        purpose=grant.scope.purpose,
        flow=flow_to_proto(Flow.COOP_TO_COOP),
        min_group_size=release.min_group_size,
        policy_hash=policy_hash,
        noise_mechanism=noise.mechanism.value if noise else "",
        noise_epsilon=noise.epsilon if noise else 0.0,
        decision_id=decision_id,
    )
    if installed is not None:
        header.installed.solar_kw, header.installed.wind_kw = installed.solar_kw, installed.wind_kw
    return federation_pb2.AggregatesChunk(header=header)


def series_to_proto(series: Series) -> federation_pb2.AggregatesChunk:
    msg = federation_pb2.FederatedSeries(
        dataset=series.dataset,
        period_start_unix=series.periods.tolist(),
        kwh=series.kwh.tolist() if series.kwh is not None else [],
        member_count=series.member_count.tolist() if series.member_count is not None else [],
        suppressed_period_start_unix=series.suppressed.tolist(),
    )
    return federation_pb2.AggregatesChunk(series=msg)


def series_from_proto(msg: federation_pb2.FederatedSeries) -> Series:
    return Series(
        msg.dataset,
        np.asarray(msg.period_start_unix, np.int64),
        np.asarray(msg.kwh, np.float64) if len(msg.kwh) else None,
        np.asarray(msg.member_count, np.int64) if len(msg.member_count) else None,
        np.asarray(msg.suppressed_period_start_unix, np.int64),
    )
