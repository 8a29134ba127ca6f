"""What the forecaster trains and predicts on: the co-op's own aggregates, decided by the consent
policy once per profile, and peers' aggregates fetched under the grants this node holds."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
import pandas as pd

from coopfed.forecaster import CoopData, Site
from coopfed.node.errors import CoopfedError, FailedPrecondition, InvalidArgument
from coopfed.node.federation import grantee
from coopfed.node.federation.state import HeldGrant
from coopfed.node.model import DATASETS, HALF_HOUR, Flow
from coopfed.node.storage import Capacity
from coopfed.v1 import federation_pb2

if TYPE_CHECKING:
    from coopfed.federation.keys import KeyRing
    from coopfed.node.federation.context import Federation
    from coopfed.node.policy.consent import ConsentAnswers
    from coopfed.node.policy.holder import PolicyHolder
    from coopfed.node.release.pipeline import ReleasePipeline
    from coopfed.node.settings import PlaceSection
    from coopfed.node.storage import Store

Columns = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # dataset -> periods, kWh, members
NEEDED = ("demand", "generation")
_EMPTY = (np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64))


@dataclass(frozen=True)
class ForecastPolicy:
    """The forecast values in policy data."""

    peak_percentile: float
    purpose: str


@dataclass(frozen=True)
class OwnData:
    """The co-op's aggregates for one flow, and the consent decisions behind them."""

    coop: CoopData
    flow: str
    consenting: dict[str, list[str]]  # dataset -> profile ids whose consent allows the flow
    min_group_size: int


@dataclass(frozen=True)
class PeerData:
    coop: CoopData
    grant_id: str
    decision_id: str  # the issuer's decision-log entry of the release


def aggregates_frame(
    columns: Columns, min_group_size: int = 1, unknown: Columns | None = None
) -> pd.DataFrame:
    """Co-op totals per period, as the forecaster reads them.

    Periods are those of demand cells with at least `min_group_size` members, and `members` is
    their count. Generation and export absent from such a period are 0 kWh (nobody reported
    any); cells under the group size, or withheld by a peer (`unknown` periods), are NaN.
    """
    periods, kwh, counts = columns.get("demand", _EMPTY)
    keep = counts >= min_group_size
    index = pd.Index(periods[keep].astype(np.int64), name="period")
    frame = pd.DataFrame({"demand": kwh[keep].astype(float)}, index=index)
    for dataset in DATASETS[1:]:
        p, v, c = columns.get(dataset, _EMPTY)
        values = pd.Series(np.where(c >= min_group_size, v, np.nan), index=p.astype(np.int64), dtype=float)
        column = values.reindex(index).to_numpy(copy=True)
        column[~index.isin(p)] = 0.0
        withheld = (unknown or {}).get(dataset, _EMPTY)[0]
        column[index.isin(withheld)] = np.nan
        frame[dataset] = column
    frame["members"] = counts[keep].astype(np.int64)
    return frame


def by_technology(capacity: Capacity | federation_pb2.InstalledCapacity | None) -> dict[str, float] | None:
    """Declared kW as the forecaster's technologies; None (the 28-day peak fallback) if unknown."""
    return None if capacity is None else {"pv": capacity.solar_kw, "wind": capacity.wind_kw}


def peer_frame(result: grantee.Aggregates) -> pd.DataFrame:
    """A peer's released series as aggregates; withheld cells are unknown, not zero."""
    columns: Columns = {}
    unknown: Columns = {}
    for dataset, s in result.series.items():
        if s.kwh is None or s.member_count is None:
            continue
        columns[dataset] = (s.periods, s.kwh, s.member_count)
        unknown[dataset] = (s.suppressed, np.empty(0), np.empty(0, np.int64))
    return aggregates_frame(columns, 1, unknown)


class ForecastData:
    """The aggregates the forecaster reads, built once with what deciding and fetching them uses."""

    def __init__(
        self, *, store: Store, policy: PolicyHolder, consent: ConsentAnswers, pipeline: ReleasePipeline,
        federation: Federation, keys: KeyRing, node_id: str, place: PlaceSection,
    ) -> None:  # fmt: skip
        self.store, self.policy, self.consent, self.pipeline = store, policy, consent, pipeline
        self.federation, self.keys, self.node_id, self.place = federation, keys, node_id, place

    def forecast_policy(self) -> ForecastPolicy:
        """`forecast.peak_percentile` (0-100) and `forecast.purpose` from the policy data."""
        raw: Any = self.policy.data.get("forecast")
        try:
            percentile, purpose = float(raw["peak_percentile"]), str(raw["purpose"])
        except (TypeError, KeyError, ValueError) as exc:
            raise FailedPrecondition(
                "the policy data has no valid forecast.peak_percentile and forecast.purpose",
                code="forecast.policy",
            ) from exc
        if not 0 <= percentile <= 100 or math.isnan(percentile):
            raise FailedPrecondition(
                f"policy data forecast.peak_percentile must be within 0-100, not {percentile}",
                code="forecast.policy",
            )
        return ForecastPolicy(percentile, purpose)

    def site(self) -> Site:
        """The co-op's place from `[place]`: clock, public holidays, location."""
        place = self.place
        try:
            return Site(
                self.node_id,
                place.latitude,
                place.longitude,
                place.altitude,
                tz=place.tz,
                country=place.holiday_country,
                subdiv=place.holiday_subdivision or None,
            )
        except ValueError as exc:
            raise InvalidArgument(f"[place]: {exc}", code="config.place") from exc

    def own_aggregates(
        self, flow: Flow = Flow.INTERNAL, start: int | None = None, end: int | None = None
    ) -> OwnData:
        """Totals over the profiles whose consent allows `flow` for the forecasting purpose.

        Internal use (the co-op's own forecast, its pooled model) takes every member the policy
        allows internally. A model that leaves the co-op (model federation) is trained only on what
        could be released to an aligned co-op: consent to coop_to_coop, and cells of at least k.
        """
        purpose = self.forecast_policy().purpose
        k = 1 if flow is Flow.INTERNAL else int(self.policy.data["coop"]["k_min"])
        profiles = self.store.profiles()
        consenting: dict[str, list[str]] = {}
        columns: Columns = {}
        for dataset in DATASETS:
            ids = [
                p.profile_id
                for p in profiles
                if self.consent.allows(p.settings.policy_input(), dataset, flow.value, purpose)
            ]
            consenting[dataset] = ids
            if ids:
                totals = self.store.profile_totals(ids, dataset, start, end)
                columns[dataset] = (totals.period_start, totals.kwh_sum, totals.member_count)
        frame = aggregates_frame(columns, k)
        if frame.empty:
            use = self.policy.data["flows"][flow.value]["title"]
            who = "members" if k == 1 else f"at least k = {k} members"
            raise FailedPrecondition(
                f"no half-hour has demand readings from {who} who consent to {use}"
                + (
                    ""
                    if k == 1
                    else " (k is the co-op's minimum group size, coop.k_min in its policy data: data leaves "
                    "the co-op only in groups of k members or more)"
                ),
                code="forecast.no_data",
            )
        capacity = self.pipeline.declared_capacity(
            consenting["generation"], int(self.policy.data["coop"]["k_min"])
        )
        coop = CoopData(self.node_id, frame, site=self.site(), capacity=by_technology(capacity))
        return OwnData(coop, flow.value, consenting, k)

    def usable_grants(self, purpose: str, now: int | None = None) -> list[HeldGrant]:
        """The newest held grant per pinned issuer that releases demand and generation totals with
        member counts for the forecasting purpose and is neither revoked nor expired."""
        fed = self.federation
        if fed is None:
            return []
        now = int(time.time()) if now is None else now
        pinned = fed.state.peers()
        best: dict[str, HeldGrant] = {}
        for g in fed.state.held().values():
            scope = g.scope
            if (
                g.issuer in pinned
                and g.revoked_reason is None
                and g.expires_at > now
                and scope.purpose == purpose
                and set(NEEDED) <= set(scope.datasets)
                and {"kwh", "member_count"} <= set(scope.fields)
                and (g.issuer not in best or g.expires_at > best[g.issuer].expires_at)
            ):
                best[g.issuer] = g
        return [best[p] for p in sorted(best)]

    async def peer_aggregates(
        self, purpose: str, progress: Callable[[str, int, int], None] | None = None
    ) -> tuple[list[PeerData], dict[str, str]]:
        """Fetch what each usable grant releases; returns the data and, per peer, why it is missing."""
        grants = self.usable_grants(purpose)
        found: list[PeerData] = []
        problems: dict[str, str] = {}
        for i, held in enumerate(grants):
            datasets = tuple(d for d in DATASETS if d in held.scope.datasets)
            try:
                result = await grantee.Grantee(self.federation, self.keys, self.policy).fetch_aggregates(
                    held.jti, datasets=datasets
                )
                frame = peer_frame(result)
                if frame.empty:
                    raise FailedPrecondition("it released no demand cells", code="forecast.no_data")
                # A peer's manifest says nothing of its place: neighbours are taken to share ours.
                header = result.header
                installed = by_technology(header.installed) if header.HasField("installed") else None
                peer = CoopData(held.issuer, frame, self.site(), capacity=installed)
                found.append(PeerData(peer, held.jti, result.header.decision_id))
            except (CoopfedError, grpc.RpcError, ValueError) as exc:
                problems[held.issuer] = _problem(exc)
            if progress:
                progress("fetch peers' aggregates", i + 1, len(grants))
        return found, problems


def _problem(exc: Exception) -> str:
    if isinstance(exc, grpc.RpcError):
        return f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
    return str(getattr(exc, "message", exc))


def history_window(origin: int, days: int = 35) -> tuple[int, int]:
    """The aggregates a forecast from `origin` reads: lags of two weeks, a 28-day peak reference."""
    start = origin - days * 48 * HALF_HOUR
    return start - start % HALF_HOUR, origin
