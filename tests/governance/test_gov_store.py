"""Contract of the governance store: every backend must pass these (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from coopfed.federation.grants import Granularity
from coopfed.node.decisionlog import GENESIS, verify
from coopfed.node.model import ConsentLevel, ConsentSettings
from coopfed.node.storage import InvalidData, NotFound, SqliteStore, Store
from coopfed.node.storage.governance import Conflict, GovernanceStore, GrantKind
from coopfed.node.storage.governance_rows import DECISION_BY_ID
from coopfed.node.storage.governance_sqlite import PostgresGovernanceStore, SqliteGovernanceStore
from coopfed.node.storage.postgres import PostgresStore
from coopfed.node.storage.records import (
    AccessEntry,
    Assessment,
    DataRequestRecord,
    Decision,
    DecisionFilter,
    GrantRecord,
    Organisation,
    OrganisationProfile,
    Outcome,
    RequestSpec,
    RequestState,
    Review,
)

from ..pgserver import fresh_database

BACKENDS: dict[str, Callable[[Path], tuple[Store, GovernanceStore]]] = {
    "sqlite": lambda folder: (
        s := SqliteStore(folder / "node.db", synchronous="NORMAL"),
        SqliteGovernanceStore(s),
    ),
    "postgresql": lambda folder: (s := PostgresStore(fresh_database()), PostgresGovernanceStore(s)),
}
NOW = datetime(2024, 3, 1, tzinfo=UTC)
JAN = 1704067200


@pytest.fixture(params=sorted(BACKENDS))
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, GovernanceStore]]:
    store, governance = BACKENDS[request.param](tmp_path)
    yield store, governance
    store.close()


def _event(decision_id: str) -> dict:
    return {"decision_id": decision_id, "path": "p", "input": {}, "result": {}, "timestamp": "t"}


def _assessment(decision_id: str = "a-1", verified: bool = False) -> Assessment:
    result = {"score": 60, "verified": verified, "reusable": verified, "assessed_at": 1, "expires_at": 2}
    return Assessment(decision_id, "rev", result)


def _org(gov: GovernanceStore, org_id: str = "org-1") -> Organisation:
    org = Organisation(
        org_id,
        OrganisationProfile("Uni", "university", contact="a@b"),
        NOW,
        assessment=_assessment(f"a-{org_id}"),
    )
    return gov.create_organisation(org, [])


def _spec() -> RequestSpec:
    return RequestSpec(("demand",), ("kwh",), Granularity.AGGREGATE, JAN, JAN + 3600, "third_party", "dpv:X")


def _request(
    gov: GovernanceStore,
    request_id: str,
    state: RequestState,
    org: str = "org-1",
    grant: bool = False,
    at: datetime = NOW,
) -> DataRequestRecord:
    outcome = {RequestState.APPROVED: "approve", RequestState.REJECTED: "reject"}.get(state, "refer")
    decision = Decision("d-" + request_id, "rev", {"outcome": outcome, "proposed": outcome}, at)
    record = DataRequestRecord(request_id, org, _spec(), state, at, decision)
    gov.create_request(record, _grant(request_id, org) if grant else None, None, [_event("d-" + request_id)])
    return gov.get_request(request_id)


def _grant(request_id: str, org: str = "org-1", expires: int = JAN + 10) -> GrantRecord:
    return GrantRecord("g-" + request_id, request_id, org, "token", JAN, expires, _spec().scope(), 5)


def test_the_decision_log_chains_onto_its_head(stores: tuple[Store, GovernanceStore]) -> None:
    _, gov = stores
    assert gov.decision_log_head() == (0, GENESIS)
    first = gov.append_decisions([_event("a"), _event("b")])
    second = gov.append_decisions([_event("c")])
    assert [e["seq"] for e in first + second] == [1, 2, 3]
    assert second[0]["prev_hash"] == first[-1]["hash"]
    assert gov.decision_log_head() == (3, second[0]["hash"])
    assert verify(gov.decision_log(), head=gov.decision_log_head()).ok


def test_a_decision_is_found_by_its_id(stores: tuple[Store, GovernanceStore]) -> None:
    _, gov = stores
    stored = gov.append_decisions([_event("a"), _event("b"), _event("c")])
    assert json.loads(gov.decision_entry("b")) == stored[1]
    gov.append_decisions([{**_event("b"), "input": {"again": True}}])
    assert json.loads(gov.decision_entry("b")) == stored[1]  # a repeated id: the first entry
    for missing in ("d", "", "b' OR '1'='1", "%"):
        with pytest.raises(NotFound, match="no decision"):
            gov.decision_entry(missing)


def test_the_sqlite_lookup_uses_the_decision_id_index(tmp_path: Path) -> None:
    store, _ = BACKENDS["sqlite"](tmp_path)
    with store._read() as conn:
        plan = conn.execute("EXPLAIN QUERY PLAN " + DECISION_BY_ID, ("x",)).fetchall()
    store.close()
    assert "USING INDEX decision_log_by_decision_id" in " ".join(row[-1] for row in plan)


def test_the_sqlite_decision_log_is_append_only(tmp_path: Path) -> None:
    store, gov = BACKENDS["sqlite"](tmp_path)
    gov.append_decisions([_event("a")])
    store.close()
    conn = sqlite3.connect(tmp_path / "node.db")
    for sql in ("UPDATE decision_log SET entry_json = '{}'", "DELETE FROM decision_log"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)


def test_a_failed_write_appends_nothing(stores: tuple[Store, GovernanceStore]) -> None:
    _, gov = stores
    _org(gov)
    bad = {**_event("x"), "input": {"not json": {1, 2}}}
    with pytest.raises(TypeError):
        gov.create_request(
            DataRequestRecord("r", "org-1", _spec(), RequestState.REJECTED, NOW, Decision("d", "v", {}, NOW)),
            None,
            None,
            [bad],
        )
    with pytest.raises(NotFound):
        gov.get_request("r")
    assert gov.decision_log_head() == (0, GENESIS)


def test_organisations_and_their_newest_assessment(stores: tuple[Store, GovernanceStore]) -> None:
    _, gov = stores
    org = _org(gov)
    assert org.profile.contact == "a@b"
    assert org.assessment == _assessment("a-org-1")
    verified = gov.set_verification("org-1", True, "checked", _assessment("a-2", True), [_event("v")])
    assert verified.verified
    assert verified.verification_note == "checked"
    assert verified.assessment.decision_id == "a-2"
    assert [o.organisation_id for o in gov.list_organisations()] == ["org-1"]
    with pytest.raises(NotFound):
        gov.get_organisation("org-x")


def test_requests_reviews_and_decision_lists(stores: tuple[Store, GovernanceStore]) -> None:
    _, gov = stores
    _org(gov)
    _org(gov, "org-2")
    _request(gov, "r1", RequestState.AWAITING_REVIEW)
    _request(gov, "r2", RequestState.APPROVED, grant=True, at=NOW + timedelta(minutes=1))
    _request(gov, "r3", RequestState.AWAITING_REVIEW, org="org-2", at=NOW + timedelta(minutes=2))
    assert [r.request_id for r in gov.list_requests()] == ["r3", "r2", "r1"]
    assert [r.request_id for r in gov.list_requests(organisation_id="org-1")] == ["r2", "r1"]
    waiting = gov.list_requests(state=RequestState.AWAITING_REVIEW, oldest_first=True)
    assert [r.request_id for r in waiting] == ["r1", "r3"]
    review = Review("rv1", "board:ada", Outcome.APPROVE, "ok", Outcome.REFER, NOW + timedelta(minutes=3))
    gov.record_review("r1", review, _grant("r1"), [_event("rv1")])
    decided = gov.get_request("r1")
    assert decided.state is RequestState.APPROVED
    assert decided.review == review
    assert decided.grant.grant_id == "g-r1"
    with pytest.raises(Conflict):
        gov.record_review("r1", review, None, [])
    rows, reviewed, agreed = gov.list_decisions(DecisionFilter())
    assert [(by, r.request_id) for by, r in rows] == [
        ("board", "r1"),
        ("policy", "r3"),
        ("policy", "r2"),
        ("policy", "r1"),
    ]
    assert (reviewed, agreed) == (0, 0)  # the policy referred: there was no proposal to agree with
    only = gov.list_decisions(
        DecisionFilter(decided_by="policy", outcome=Outcome.REFER, organisation_id="org-2")
    )
    assert [r.request_id for _, r in only[0]] == ["r3"]
    since = gov.list_decisions(DecisionFilter(since=NOW + timedelta(minutes=2), limit=1))
    assert [(by, r.request_id) for by, r in since[0]] == [("board", "r1")]


def test_agreement_is_counted_for_proposals(stores: tuple[Store, GovernanceStore]) -> None:
    _, gov = stores
    _org(gov)
    for rid, proposed, outcome in (
        ("a", Outcome.APPROVE, Outcome.APPROVE),
        ("b", Outcome.APPROVE, Outcome.REJECT),
    ):
        _request(gov, rid, RequestState.AWAITING_REVIEW)
        gov.record_review(rid, Review("rv-" + rid, "board:x", outcome, "r", proposed, NOW), None, [])
    assert gov.list_decisions(DecisionFilter(decided_by="board"))[1:] == (2, 1)


def test_grants_revocation_and_track_record(stores: tuple[Store, GovernanceStore]) -> None:
    _, gov = stores
    _org(gov)
    _request(gov, "r1", RequestState.APPROVED, grant=True)
    _request(gov, "r2", RequestState.APPROVED, grant=True)
    assert {g.grant_id for g in gov.list_grants("org-1")} == {"g-r1", "g-r2"}
    assert gov.revocation("g-r1") is None
    revoked = gov.revoke_grant("g-r1", "misuse", "board:ada", NOW, [_event("rev")])
    assert revoked.revoked
    assert gov.revocation("g-r1") == "misuse"
    again = gov.revoke_grant("g-r1", "other", "board:bob", NOW, [_event("rev2")])
    assert again.revocation_reason == "misuse"
    assert gov.decision_log_head()[0] == 3  # r1, r2 and the first revocation only
    assert gov.track_record("org-1", JAN + 100) == (1, 1)  # r2 ran to expiry, r1 was revoked
    with pytest.raises(NotFound):
        gov.revoke_grant("g-x", "r", "b", NOW, [])
    assert gov.revocation("g-x") is None


def test_release_membership_contributors_and_the_access_log(stores: tuple[Store, GovernanceStore]) -> None:
    store, gov = stores
    _org(gov)
    _request(gov, "r1", RequestState.APPROVED, grant=True)
    green, red = ConsentSettings(level=ConsentLevel.GREEN), ConsentSettings(level=ConsentLevel.RED)
    for mid, settings, periods in (("a", green, [0, 1]), ("b", green, [5]), ("c", red, [0])):
        store.create_member(mid, mid, settings, admitted_by="test")
        times = JAN + 1800 * np.array(periods, dtype=np.int64)
        store.put_readings(mid, [("demand", times, np.ones(len(periods)))])
    g, r = green.profile_id, red.profile_id
    assert gov.members_of_profiles([g, r]) == {g: ["a", "b"], r: ["c"]}
    assert gov.member_profiles(["a", "c", "zz"]) == {"a": g, "c": r}
    assert gov.contributors([g], "demand", [(JAN, JAN + 3600)]) == [("a", g)]
    assert gov.contributors([g], "demand", [(JAN, JAN + 1800), (JAN + 9000, JAN + 10800)]) == [
        ("a", g),
        ("b", g),
    ]
    assert gov.contributors([g], "gas", [(JAN, JAN + 3600)]) == []
    # a span strictly between a member's first and last reading: only a reading inside counts
    assert gov.contributors([g], "demand", [(JAN + 3600, JAN + 9000)]) == []
    store.put_readings("b", [("demand", np.array([JAN + 3600 * 2, JAN + 1800 * 2400]), np.ones(2))])
    assert gov.contributors([g], "demand", [(JAN + 3600, JAN + 9000)]) == [("b", g)]
    later = [(JAN + 1800 * 2300, JAN + 1800 * 2500)]  # a later bucket
    assert gov.contributors([g], "demand", later) == [("b", g)]
    # the count: the same rule, each member once across runs and datasets
    store.put_readings("c", [("generation", np.array([JAN]), np.ones(1))])
    store.put_readings("a", [("generation", np.array([JAN]), np.ones(1))])
    assert gov.count_contributors({"demand": ([g], [(JAN, JAN + 3600)])}) == 1
    assert gov.count_contributors({"demand": ([g], [(JAN, JAN + 1800), (JAN + 9000, JAN + 10800)])}) == 2
    assert gov.count_contributors({"demand": ([g], [(JAN + 3600, JAN + 9000)])}) == 1  # b's reading inside
    assert gov.count_contributors({"demand": ([g], later), "generation": ([g, r], [(JAN, JAN + 1800)])}) == 3
    assert gov.count_contributors({"demand": ([g, r], [(JAN, JAN + 1800)])}) == 2  # c's profile too
    assert gov.count_contributors({"gas": ([g], [(JAN, JAN + 3600)])}) == 0
    assert gov.count_contributors({}) == 0
    entry = AccessEntry(
        NOW,
        "rel",
        "g-r1",
        "r1",
        "org-1",
        "",
        "dpv:X",
        "third_party",
        "demand",
        "aggregate",
        JAN,
        JAN + 3600,
        "d",
        "c",
    )
    pseudonyms = gov.record_access([("a", entry), ("b", entry)])
    assert set(pseudonyms) == {"a", "b"}
    assert pseudonyms["a"] != pseudonyms["b"]
    assert gov.record_access([("a", entry)]) == {"a": pseudonyms["a"]}  # stable
    seen = gov.access_for_member("a")
    assert len(seen) == 2
    assert seen[0].organisation_name == "Uni"
    assert seen[0].request_id == "r1"
    store.erase_member("a")
    assert gov.access_for_member("a") == []  # the pseudonym went with the member
    assert gov.record_access([("a", entry)]) == {}  # an erased member is never released
    assert gov.member_profiles(["a"]) == {}


def test_the_access_log_holds_releases_under_either_kind_of_grant(
    stores: tuple[Store, GovernanceStore],
) -> None:
    store, gov = stores
    _org(gov)
    _request(gov, "r1", RequestState.APPROVED, grant=True)
    store.create_member("a", "a", ConsentSettings(level=ConsentLevel.GREEN), admitted_by="test")
    # a governance entry's organisation and request are those of its grant, whatever the entry says
    third = AccessEntry(
        NOW, "rel-1", "g-r1", "r-other", "org-other", "Other", "dpv:X", "third_party", "demand", "aggregate",
        JAN, JAN + 3600, "d", "c",
    )  # fmt: skip
    gov.record_access([("a", third)])
    # a federation grant is not in this store: the entry names the peer co-op that received the data
    peer = replace(
        third, release_id="rel-2", grant_id="jti-1", request_id="", organisation_id="coop-a",
        organisation_name="A co-op", flow="coop_to_coop",
    )  # fmt: skip
    gov.record_access([("a", peer)], GrantKind.FEDERATION)
    newest, oldest = gov.access_for_member("a")
    assert (newest.organisation_id, newest.organisation_name, newest.request_id) == ("coop-a", "A co-op", "")
    assert (newest.grant_id, newest.flow, newest.release_id) == ("jti-1", "coop_to_coop", "rel-2")
    assert (oldest.organisation_id, oldest.organisation_name, oldest.request_id) == ("org-1", "Uni", "r1")
    # refused, and nothing of the batch written: a governance grant not on record, a peer not named
    with pytest.raises(InvalidData):
        gov.record_access([("a", third), ("a", replace(third, grant_id="g-unknown"))])
    with pytest.raises(InvalidData):
        gov.record_access([("a", replace(peer, organisation_id=""))], GrantKind.FEDERATION)
    assert len(gov.access_for_member("a")) == 2


def test_a_release_level_entry_shows_to_the_members_of_its_profile_then_with_data_in_its_spans(
    stores: tuple[Store, GovernanceStore],
) -> None:
    store, gov = stores
    _org(gov)
    _request(gov, "r1", RequestState.APPROVED, grant=True)
    green, red = ConsentSettings(level=ConsentLevel.GREEN), ConsentSettings(level=ConsentLevel.RED)
    before, after = NOW - timedelta(days=1), NOW + timedelta(hours=1)
    joined = (("a", green, before, 0), ("b", green, before, 5), ("c", red, before, 0), ("d", green, after, 0))
    for mid, settings, at, period in joined:
        store.create_member(mid, mid, settings, admitted_by="test", at=at)
        store.put_readings(mid, [("demand", np.array([JAN + 1800 * period]), np.ones(1))])
    store.create_member("e", "e", green, at=before)  # an applicant then, admitted later
    store.put_readings("e", [("demand", np.array([JAN]), np.ones(1))])
    store.admit_member("e", by="test", at=after)
    entry = AccessEntry(
        NOW, "rel", "g-r1", "", "", "", "dpv:X", "third_party", "demand", "aggregate", JAN, JAN + 7200,
        "d", "c",
    )  # fmt: skip
    gov.record_release_access([(green.profile_id, entry, [(JAN, JAN + 1800), (JAN + 3600, JAN + 5400)])])
    store.set_consent("a", red, at=after)  # a was green at the release: still sees it
    store.set_consent("c", green, at=after)  # c was not: still does not
    [seen] = gov.access_for_member("a")
    assert (seen.release_id, seen.organisation_name, seen.request_id, seen.period_end) == (
        "rel",
        "Uni",
        "r1",
        JAN + 7200,
    )
    # b's reading lies in no span; c was red; d joined, and e was admitted, after the release
    assert [gov.access_for_member(m) for m in "bcde"] == [[], [], [], []]
    # per-member entries (individual data, and every entry before release-level ones) show beside it
    gov.record_access([("a", replace(entry, release_id="rel-2", granularity="individual"))])
    newest, oldest = gov.access_for_member("a")
    assert (newest.release_id, oldest.release_id) == ("rel-2", "rel")
    assert gov.access_for_member("a", 1) == [newest]
    assert gov.access_for_member("a", after=newest.key) == [oldest]
    store.erase_member("a")
    assert gov.access_for_member("a") == []
