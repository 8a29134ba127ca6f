"""Every List RPC pages (AIP-158) against a real node: pages cover every item exactly once while
rows are added between them, a huge page_size is cut to the maximum, and a page token that is
random, edited, another RPC's, another caller's or another query's is INVALID_ARGUMENT."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from coopfed.node.client import bearer, every_page
from coopfed.node.model import ConsentLevel, ConsentSettings
from coopfed.node.storage.governance import GrantKind
from coopfed.node.storage.records import AccessEntry
from coopfed.v1 import governance_pb2 as pb
from coopfed.v1 import member_pb2
from tests.governance.conftest import (
    GREEN,
    JAN,
    Running,
    add_member,
    data_request,
    register,
    start,
    verify_org,
)

pytestmark = pytest.mark.integration

SIZE = 3  # items per page in the walks: several pages from a handful of rows


@dataclass
class World:
    gov: Running
    unverified: tuple  # an organisation whose requests the policy refers to the board
    verified: tuple  # one whose requests are approved at once, each with a grant
    member_id: str
    member: tuple  # the member's metadata


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    for gov in start(tmp_path_factory.mktemp("pages")):
        for _ in range(5):  # enough consenting members for a request to be decided
            add_member(gov.node, GREEN)
        unverified = register(gov)[1]
        verified_id, verified = register(gov)
        verify_org(gov, verified_id)
        for _ in range(3):
            register(gov)
        for _ in range(4):
            gov.governance.SubmitDataRequest(data_request(), metadata=unverified)
            gov.governance.SubmitDataRequest(data_request(), metadata=verified)
        reply = gov.members.Register(member_pb2.RegisterRequest(display_name="Ada"))
        world = World(gov, unverified, verified, reply.member_id, bearer(reply.token))
        for _ in range(4):
            _consent_change(world)
            _access_entry(world)
            _applicant(world)
        yield world


def _consent_change(w: World) -> None:
    level = ConsentLevel.GREEN if len(w.gov.node.store.consent_history(w.member_id)) % 2 else ConsentLevel.RED
    w.gov.node.store.set_consent(w.member_id, ConsentSettings(level=level))


def _access_entry(w: World) -> None:
    entry = AccessEntry(
        datetime.now(UTC), f"rel-{uuid.uuid4().hex[:8]}", "jti-1", "", "coop-b", "B co-op", "dpv:X",
        "coop_to_coop", "demand", "aggregate", JAN, JAN + 3600, "d", "c",
    )  # fmt: skip
    w.gov.node.governance.record_access([(w.member_id, entry)], GrantKind.FEDERATION)


def _applicant(w: World) -> None:
    w.gov.node.store.create_member("a-" + uuid.uuid4().hex[:12], "applicant", GREEN)


def _org(w: World) -> None:
    register(w.gov)


def _request(w: World, md: tuple) -> None:
    w.gov.governance.SubmitDataRequest(data_request(), metadata=md)


@dataclass(frozen=True)
class Lister:
    """One List RPC: how to call it, its items, an item's identity, and how a new row arrives."""

    name: str
    call: Callable[[World], Any]
    request: Callable[[], Any]
    items: str
    key: Callable[[Any], Any]
    metadata: Callable[[World], tuple | None]
    add: Callable[[World], None] | None  # None: a list from policy, fixed while the node runs
    appended: bool = False  # new rows come last (oldest first): a walk sees them too


LISTERS = [
    Lister("ListDatasets", lambda w: w.gov.governance.ListDatasets, pb.ListDatasetsRequest, "datasets",
           lambda d: d.id, lambda w: None, None),
    Lister("ListPurposes", lambda w: w.gov.governance.ListPurposes, pb.ListPurposesRequest, "purposes",
           lambda p: p.code, lambda w: None, None),
    Lister("ListPersonas", lambda w: w.gov.members.ListPersonas, member_pb2.ListPersonasRequest, "personas",
           lambda p: p.name, lambda w: None, None),
    Lister("ListMyRequests", lambda w: w.gov.governance.ListMyRequests, pb.ListMyRequestsRequest, "requests",
           lambda r: r.request_id, lambda w: w.unverified, lambda w: _request(w, w.unverified)),
    Lister("ListMyGrants", lambda w: w.gov.governance.ListMyGrants, pb.ListMyGrantsRequest, "grants",
           lambda g: g.grant_id, lambda w: w.verified, lambda w: _request(w, w.verified)),
    Lister("ListReferred", lambda w: w.gov.review.ListReferred, pb.ListReferredRequest, "requests",
           lambda r: r.request_id, lambda w: w.gov.board(), lambda w: _request(w, w.unverified), True),
    Lister("ListDecisions", lambda w: w.gov.review.ListDecisions, pb.ListDecisionsRequest, "decisions",
           lambda d: (d.decided_by, d.request_id), lambda w: w.gov.board(),
           lambda w: _request(w, w.verified)),
    Lister("ListOrganisations", lambda w: w.gov.review.ListOrganisations, pb.ListOrganisationsRequest,
           "organisations", lambda o: o.organisation_id, lambda w: w.gov.board(), _org, True),
    Lister("ListApplicants", lambda w: w.gov.review.ListApplicants, pb.ListApplicantsRequest, "applicants",
           lambda a: a.member_id, lambda w: w.gov.board(), _applicant, True),
    Lister("ListConsentHistory", lambda w: w.gov.members.ListConsentHistory,
           member_pb2.ListConsentHistoryRequest, "records", lambda r: r.record_id, lambda w: w.member,
           _consent_change, True),
    Lister("ListDataAccess", lambda w: w.gov.members.ListDataAccess, member_pb2.ListDataAccessRequest,
           "entries", lambda e: e.release_id, lambda w: w.member, _access_entry),
]  # fmt: skip
BY_NAME = {lister.name: lister for lister in LISTERS}


def test_every_list_rpc_of_every_service_pages() -> None:
    import importlib
    import pkgutil

    import coopfed.v1

    methods = [
        m
        for info in pkgutil.iter_modules(coopfed.v1.__path__)
        if info.name.endswith("_pb2")
        for service in importlib.import_module(f"coopfed.v1.{info.name}").DESCRIPTOR.services_by_name.values()
        for m in service.methods
        if m.name.startswith("List") and service.name != "Health"
    ]
    for m in methods:
        assert {"page_size", "page_token"} <= set(m.input_type.fields_by_name), m.full_name
        assert "next_page_token" in m.output_type.fields_by_name, m.full_name
    here = ("coopfed/v1/governance.proto", "coopfed/v1/member.proto")  # ListJournal: tests/ledger
    assert {m.name for m in methods if m.containing_service.file.name in here} == set(BY_NAME)


def _everything(w: World, lister: Lister) -> list:
    found, _ = every_page(lister.call(w), lister.request(), lister.items, metadata=lister.metadata(w))
    return [lister.key(x) for x in found]


def _page(w: World, lister: Lister, token: str = "", size: int = SIZE) -> Any:
    request = lister.request()
    request.page_size, request.page_token = size, token
    return lister.call(w)(request, metadata=lister.metadata(w))


@pytest.mark.parametrize("name", list(BY_NAME))
def test_pages_cover_every_item_once_while_rows_arrive(world: World, name: str) -> None:
    lister = BY_NAME[name]
    before = _everything(world, lister)
    assert len(before) > SIZE or lister.add is None  # several pages
    seen, added, token = [], 0, ""
    for _ in range(100):  # a walk that never ends fails, not hangs
        reply = _page(world, lister, token, size=SIZE if lister.add else 1)
        page = [lister.key(x) for x in getattr(reply, lister.items)]
        assert 0 < len(page) <= SIZE
        seen += page
        if not (token := reply.next_page_token):
            break
        if lister.add is not None:
            lister.add(world)
            added += 1
    else:
        pytest.fail("100 pages and no end")
    assert len(seen) == len(set(seen)), "an item was repeated"
    assert set(before) <= set(seen), "an item was skipped"
    after = _everything(world, lister)
    assert len(after) == len(before) + added
    assert seen == [key for key in after if key in set(seen)], "pages out of the list's order"
    if lister.appended:  # the rows added came after the walk's place: it reached them too
        assert seen == after


def test_a_huge_page_size_is_cut_to_the_maximum(world: World) -> None:
    lister = BY_NAME["ListApplicants"]
    for _ in range(1001 - len(_everything(world, lister))):
        _applicant(world)
    first = _page(world, lister, size=2**31 - 1)
    assert len(first.applicants) == 1000
    assert first.next_page_token
    rest = _page(world, lister, first.next_page_token, size=2**31 - 1)
    assert len(first.applicants) + len(rest.applicants) == len(_everything(world, lister))
    assert _code(lambda: _page(world, lister, size=-1)) is grpc.StatusCode.INVALID_ARGUMENT


def _code(call: Callable[[], Any]) -> grpc.StatusCode:
    """The status of a call that must fail, in plain words (no traceback)."""
    with pytest.raises(grpc.RpcError) as refused:
        call()
    assert "Traceback" not in (refused.value.details() or "")
    return refused.value.code()


def _edited(token: str) -> str:
    """The token with one character of its middle changed (a forged key or request)."""
    i = len(token) // 2
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]


def _hostile_tokens(w: World, lister: Lister) -> dict[str, str]:
    own = _page(w, lister, size=1).next_page_token
    assert own
    other = BY_NAME["ListPurposes" if lister.name != "ListPurposes" else "ListPersonas"]
    return {
        "random bytes": base64.urlsafe_b64encode(os.urandom(48)).decode(),
        "not base64": "%%% not a token %%%",
        "a number": "100",
        "another RPC's": _page(w, other, size=1).next_page_token,
        "edited": _edited(own),
        "truncated": own[:-4],
        "too long": own + "A" * 600,
    }


@pytest.mark.parametrize("name", list(BY_NAME))
def test_a_hostile_page_token_is_invalid_argument(world: World, name: str) -> None:
    lister = BY_NAME[name]
    for what, token in _hostile_tokens(world, lister).items():
        assert _code(lambda t=token: _page(world, lister, t)) is grpc.StatusCode.INVALID_ARGUMENT, what


def test_a_token_is_only_for_its_own_query_and_caller(world: World) -> None:
    gov = world.gov
    decisions = pb.ListDecisionsRequest(decided_by="policy", page_size=1)
    token = gov.review.ListDecisions(decisions, metadata=gov.board()).next_page_token
    assert token
    other_query = pb.ListDecisionsRequest(decided_by="board", page_size=1, page_token=token)
    assert _code(lambda: gov.review.ListDecisions(other_query, metadata=gov.board())) is (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    same = pb.ListDecisionsRequest(decided_by="policy", page_size=5, page_token=token)
    assert gov.review.ListDecisions(same, metadata=gov.board()).decisions  # a new page size is fine
    mine = gov.governance.ListMyRequests(pb.ListMyRequestsRequest(page_size=1), metadata=world.unverified)
    theirs = pb.ListMyRequestsRequest(page_size=1, page_token=mine.next_page_token)
    assert _code(lambda: gov.governance.ListMyRequests(theirs, metadata=world.verified)) is (
        grpc.StatusCode.INVALID_ARGUMENT
    )
