"""Publishing open data (flow 5) through the release pipeline, as a Frictionless Data Package.

Who contributes is decided per consent profile: the consent policy about the open-data flow,
then the open-data policy (`policies/open_data/`), whose terms also give the licence, purpose,
datasets and k. Each dataset's half-hourly totals and member counts are one CSV resource; cells
under k are left out. The publication is one decision-log entry, and every contributing member
gets an access-log entry naming it, before any file is written.
"""

from __future__ import annotations

import csv
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import frictionless

from coopfed.node.decisionlog import DecisionLog
from coopfed.node.errors import FailedPrecondition, InvalidArgument
from coopfed.node.model import HALF_HOUR, Flow
from coopfed.node.policy.consent import ConsentDecision
from coopfed.node.policy.holder import PolicyHolder
from coopfed.node.release import pipeline
from coopfed.node.release.pipeline import ReleasePipeline
from coopfed.node.storage import Store
from coopfed.node.storage.governance import GrantKind

PATH = "coopfed/open_data/publication"
CONTRIBUTES = "coopfed/open_data/publication/contributes"
TERMS = "coopfed/open_data/publication/terms"
DEFAULT_DAYS = 28
_FIELDS = [
    {"name": "period_start", "type": "datetime", "description": "start of the half-hour, UTC"},
    {"name": "kwh", "type": "number", "description": "total over the contributing members, kWh"},
    {"name": "members", "type": "integer", "description": "members contributing a reading to the half-hour"},
]


@dataclass(frozen=True)
class Publication:
    publication_id: str
    decision_id: str
    folder: Path
    period: tuple[int, int]
    files: tuple[str, ...]
    cells_released: int
    cells_suppressed: int
    contributors: int
    parquet: bool  # written beside the CSV files (needs pyarrow)


@dataclass(frozen=True, kw_only=True)
class Publisher:
    """The co-op's open-data publications: terms and contributors from the policy in force, each
    publication in the decision log and the store."""

    store: Store
    policy: PolicyHolder
    decision_log: DecisionLog
    pipeline: ReleasePipeline

    def publish(
        self, out: Path, period: tuple[int, int] | None = None, *, epsilon: float | None = None
    ) -> Publication:
        """Write a data package of the period (default: the last four weeks held) into `out`; with
        `epsilon`, differentially private (charged to every member's yearly budget)."""
        terms = _terms(self.policy)
        newest = self.store.newest_period()
        if newest is None:
            raise FailedPrecondition(
                "the co-op holds no readings yet: there is nothing to publish", code="opendata.empty"
            )
        start, end = period or (newest + HALF_HOUR - DEFAULT_DAYS * 86400, newest + HALF_HOUR)
        if start % HALF_HOUR or end % HALF_HOUR or start >= end:
            raise InvalidArgument(
                "period: half-hour aligned, start before end", code="opendata.period", field="period"
            )
        if epsilon is not None and not 0 < epsilon < float("inf"):
            raise InvalidArgument("epsilon: a positive number", code="opendata.epsilon", field="epsilon")
        publication_id = "pub-" + uuid.uuid4().hex[:16]
        ask = pipeline.Ask(Flow.OPEN_DATA.value, terms["purpose"], tuple(terms["datasets"]), (start, end),
                           min_group_size=int(terms["k"]), epsilon=epsilon)  # fmt: skip
        to = pipeline.Recipient(GrantKind.OPEN_DATA, publication_id, "public", "open data")
        release = self.pipeline.plan(ask, to, contributes=self._contributes)
        question = {"publication": publication_id, "licence": terms["licence"]["name"]}
        release = self.pipeline.record(release, PATH, question)
        released = [self.pipeline.cells(release, ds) for ds in release.datasets]
        contributors = self.pipeline.log_access(release, released)  # before any file is written
        out.mkdir(parents=True, exist_ok=True)
        files = [_write_csv(out, cells) for cells in released]
        parquet = _write_parquet(out, released)
        _package(self.policy, release, terms, files).to_json(str(out / "datapackage.json"))
        self.store.note_publication(publication_id, release.decision_id, int(time.time()), str(out))
        return Publication(
            publication_id=publication_id,
            decision_id=release.decision_id,
            folder=out,
            period=release.period,
            files=("datapackage.json", *files),
            cells_released=sum(c.periods.size for c in released),
            cells_suppressed=sum(c.suppressed.size for c in released),
            contributors=contributors,
            parquet=parquet,
        )

    def _contributes(
        self, profile: dict[str, Any], dataset: str, consent: ConsentDecision, consent_id: str
    ) -> str | None:
        """The open-data policy's answer for one profile, on top of its consent decision (logged)."""
        question = {
            "profile": profile,
            "dataset": dataset,
            "consent": {"allowed": consent.allowed, "reasons": list(consent.reasons)},
        }
        answer, revision = self.policy.decide(CONTRIBUTES, question)
        allowed = isinstance(answer, dict) and answer.get("allowed") is True
        logged = {**question, "consent_decision_id": consent_id}
        decision_id = self.decision_log.record(CONTRIBUTES, logged, answer, revision)
        return decision_id if allowed else None


def _terms(policy: PolicyHolder) -> dict[str, Any]:
    terms = policy.evaluate(TERMS, {})
    if not isinstance(terms, dict) or not terms.get("datasets"):
        raise FailedPrecondition("the open-data policy gives no publication terms", code="opendata.terms")
    return terms


def _write_csv(out: Path, cells: pipeline.Cells) -> str:
    name = f"{cells.dataset}.csv"
    assert cells.kwh is not None
    assert cells.member_count is not None
    with (out / name).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([field["name"] for field in _FIELDS])
        for p, kwh, n in zip(
            cells.periods.tolist(), cells.kwh.tolist(), cells.member_count.tolist(), strict=True
        ):
            writer.writerow([_utc(p), f"{kwh:.4f}", n])
    return name


def _write_parquet(out: Path, released: list[pipeline.Cells]) -> bool:
    """Parquet beside the CSV files (pyarrow loads only for a publication)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for cells in released:
        table = pa.table({"period_start": pa.array(cells.periods * 1_000_000, pa.timestamp("us", "UTC")),
                          "kwh": cells.kwh, "members": cells.member_count})  # fmt: skip
        pq.write_table(table, out / f"{cells.dataset}.parquet")
    return True


def _package(
    policy: PolicyHolder, release: pipeline.Release, terms: dict[str, Any], files: list[str]
) -> frictionless.Package:
    data = policy.data
    coop = data["coop"]
    resources = [
        frictionless.Resource(
            name=name.removesuffix(".csv"),
            path=name,
            title=data["datasets"][name.removesuffix(".csv")]["title"],
            description="Half-hours with fewer contributing members than k are left out.",
            schema=frictionless.Schema.from_descriptor({"fields": _FIELDS, "primaryKey": ["period_start"]}),
        )
        for name in files
    ]
    start, end = release.period
    package = frictionless.Package(
        name=f"{coop['id']}-energy-profiles",
        title=terms["title"],
        description=terms["description"],
        licenses=[terms["licence"]],
        sources=[
            {"title": f"smart-meter readings of {coop['name']} members who chose to publish as open data"}
        ],
        contributors=[{"title": coop["name"], "role": "publisher"}],
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        resources=resources,
    )
    package.custom["coopfed"] = {
        "publication_id": release.recipient.grant_id, "decision_id": release.decision_id,
        "policy_revision": policy.revision, "k": release.min_group_size, "purpose": release.ask.purpose,
        "period": {"start": _utc(start), "end": _utc(end)},
        "differential_privacy": None if release.ask.epsilon is None else {
            "mechanism": "laplace (OpenDP)", "epsilon": release.ask.epsilon,
            "epsilon_per_member_per_year": data["privacy"]["epsilon_per_member_per_year"],
            "bound_kwh_per_member_and_half_hour": data["federation"]["noise"]["sensitivity_kwh"],
        },
    }  # fmt: skip
    return package


def _utc(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
