"""DataService under attack: forged, stale, foreign and revoked grants, scope abuse, bad input;
revocation mid-stream, consent withdrawn after the grant, and erasure after a release."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import grpc
import pytest
from cryptography.hazmat.primitives import serialization

from coopfed.federation.grants import GrantScope, Granularity, issue_grant
from coopfed.federation.keys import KeyRing
from coopfed.node.decisionlog import verify
from coopfed.v1 import common_pb2
from coopfed.v1 import governance_pb2 as pb

from .conftest import (
    AMBER_THIRD_PARTY,
    GREEN,
    JAN,
    RED,
    Running,
    add_member,
    approved_grant,
    data_request,
    fetch,
    holder_bearer,
    register,
)

pytestmark = pytest.mark.integration
DAY = 86_400


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(token: str) -> tuple[dict, dict, str]:
    header, payload, signature = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
        signature,
    )


def _scope() -> GrantScope:
    return GrantScope(
        datasets=frozenset({"demand"}), period_start=JAN, period_end=JAN + 31 * DAY,
        purpose="dpv:AcademicResearch", flow="third_party", fields=frozenset({"kwh"}),
    )  # fmt: skip


@pytest.fixture
def granted(gov: Running) -> tuple[Running, pb.Grant, str, tuple]:
    for _ in range(5):
        add_member(gov.node, GREEN)
    org_id, md = register(gov)
    return gov, approved_grant(gov, md), org_id, md


def _forgeries(gov: Running, grant: pb.Grant, org_id: str) -> dict[str, str]:
    node = gov.node
    now = int(time.time())
    sign = lambda ring=node.keys, **kw: issue_grant(  # noqa: E731
        ring, issuer=kw.pop("issuer", node.node_id), subject=org_id,
        audience=kw.pop("audience", node.node_id), scope=_scope(), **kw,
    )  # fmt: skip
    header, payload, signature = _segments(grant.token)
    none_header = _b64(json.dumps({"alg": "none", "kid": header["kid"], "typ": header["typ"]}).encode())
    body = _b64(json.dumps(payload).encode())
    public = node.keys.signer.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_header = _b64(json.dumps({"alg": "HS256", "kid": header["kid"], "typ": header["typ"]}).encode())
    hs_signature = _b64(hmac.new(public, f"{hs_header}.{body}".encode(), hashlib.sha256).digest())
    widened = {**payload, "scope": {**payload["scope"], "datasets": ["demand", "export", "generation"]}}
    return {
        "expired": sign(now=now - 40 * DAY, ttl=DAY),
        "not yet valid": sign(now=now, not_before=now + 3600),
        "another audience": sign(audience="some-other-coop"),
        "another issuer": sign(issuer="some-other-coop"),
        "unknown key": sign(ring=KeyRing.load_or_create(node.settings.base_dir / "stranger")),
        "alg none": f"{none_header}.{body}.",
        "HS256 with the public key": f"{hs_header}.{body}.{hs_signature}",
        "tampered payload": f"{grant.token.split('.')[0]}.{_b64(json.dumps(widened).encode())}.{signature}",
        "not a JWT": "not-a-token",
        "valid but never issued": sign(),
    }


def test_hostile_grants_are_unauthenticated(granted: tuple[Running, pb.Grant, str, tuple]) -> None:
    gov, grant, org_id, _ = granted
    for name, token in _forgeries(gov, grant, org_id).items():
        with pytest.raises(grpc.RpcError) as err:
            fetch(gov, token)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
    assert len(fetch(gov, grant.token)) == 3  # the real grant still works


def test_a_revoked_grant_is_unauthenticated_with_its_reason(
    granted: tuple[Running, pb.Grant, str, tuple],
) -> None:
    gov, grant, _, md = granted
    revoked = gov.review.RevokeGrant(
        pb.RevokeGrantRequest(grant_id=grant.grant_id, reason="results were shared beyond the study"),
        metadata=gov.board(),
    )
    assert revoked.revoked
    with pytest.raises(grpc.RpcError) as err:
        fetch(gov, grant.token)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "results were shared beyond the study" in err.value.details()
    (mine,) = gov.governance.ListMyGrants(pb.ListMyGrantsRequest(), metadata=md).grants
    assert mine.revoked
    assert mine.revocation_reason == "results were shared beyond the study"
    again = gov.review.RevokeGrant(
        pb.RevokeGrantRequest(grant_id=grant.grant_id, reason="twice"), metadata=gov.board()
    )
    assert again.revocation_reason == "results were shared beyond the study"  # the first revocation stands


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (pb.FetchDataRequest(datasets=["generation"]), grpc.StatusCode.PERMISSION_DENIED),
        (pb.FetchDataRequest(fields=["member_ref"]), grpc.StatusCode.PERMISSION_DENIED),
        (pb.FetchDataRequest(granularity=pb.GRANULARITY_INDIVIDUAL), grpc.StatusCode.PERMISSION_DENIED),
        (
            pb.FetchDataRequest(period=common_pb2.Period(start_unix=JAN - DAY, end_unix=JAN + DAY)),
            grpc.StatusCode.PERMISSION_DENIED,
        ),
        (
            pb.FetchDataRequest(period=common_pb2.Period(start_unix=JAN + 7, end_unix=JAN + DAY)),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            pb.FetchDataRequest(period=common_pb2.Period(start_unix=JAN + DAY, end_unix=JAN)),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (pb.FetchDataRequest(granularity=7), grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_a_valid_grant_used_beyond_its_scope(
    granted: tuple[Running, pb.Grant, str, tuple], request_: pb.FetchDataRequest, code: grpc.StatusCode
) -> None:
    gov, grant, _, _ = granted
    before = sum(1 for _ in gov.node.governance.decision_log())
    with pytest.raises(grpc.RpcError) as err:
        fetch(gov, grant.token, request_)
    assert err.value.code() == code
    assert sum(1 for _ in gov.node.governance.decision_log()) == before  # nothing was released or logged


def test_a_narrower_fetch_within_the_grant_is_served(granted: tuple[Running, pb.Grant, str, tuple]) -> None:
    gov, grant, _, _ = granted
    period = common_pb2.Period(start_unix=JAN, end_unix=JAN + DAY)
    chunks = fetch(gov, grant.token, pb.FetchDataRequest(period=period, fields=["kwh"]))
    series = chunks[1].aggregate
    assert len(series.period_start_unix) == 48
    assert list(series.member_count) == []  # not asked for


def test_revocation_takes_effect_on_the_next_message(gov: Running) -> None:
    members = [add_member(gov.node, GREEN, days=31) for _ in range(30)]
    _, md = register(gov)
    grant = approved_grant(gov, md, data_request(granularity=pb.GRANULARITY_INDIVIDUAL, fields=("kwh",)))
    stream = gov.data.FetchData(pb.FetchDataRequest(), metadata=holder_bearer(gov, grant.token))
    received = [next(stream), next(stream)]  # the header and the first member's series
    gov.review.RevokeGrant(
        pb.RevokeGrantRequest(grant_id=grant.grant_id, reason="stop now"), metadata=gov.board()
    )
    with pytest.raises(grpc.RpcError) as err:
        received.extend(stream)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "stop now" in err.value.details()
    assert sum(c.WhichOneof("content") == "individual" for c in received) < len(members)
    assert not any(c.WhichOneof("content") == "summary" for c in received)


def test_consent_withdrawn_after_the_grant_is_respected(gov: Running) -> None:
    stays = [add_member(gov.node, AMBER_THIRD_PARTY, days=2) for _ in range(3)]
    leaves = add_member(gov.node, GREEN, days=2)
    _, md = register(gov)
    grant = approved_grant(
        gov, md, data_request(granularity=pb.GRANULARITY_INDIVIDUAL, fields=("kwh", "member_ref"), days=2)
    )
    gov.node.store.set_consent(leaves, RED, withdrawal_reason="changed my mind")
    chunks = fetch(gov, grant.token)
    refs = {c.individual.member_ref for c in chunks if c.WhichOneof("content") == "individual"}
    assert len(refs) == 3
    assert chunks[-1].summary.members_released == 3
    assert gov.node.governance.access_for_member(leaves) == []
    assert all(len(gov.node.governance.access_for_member(m)) == 1 for m in stays)
    other = approved_grant(
        gov, md, data_request(granularity=pb.GRANULARITY_INDIVIDUAL, fields=("kwh", "member_ref"), days=1)
    )
    other_refs = {c.individual.member_ref for c in fetch(gov, other.token) if c.HasField("individual")}
    assert not refs & other_refs  # member references cannot be linked across grants


def test_erasing_a_member_after_a_release_keeps_the_log_verifiable(gov: Running) -> None:
    members = [add_member(gov.node, GREEN) for _ in range(5)]
    _, md = register(gov)
    fetch(gov, approved_grant(gov, md).token)
    gone = members[0]
    assert len(gov.node.governance.access_for_member(gone)) == 1
    gov.node.store.erase_member(gone)
    assert gov.node.governance.access_for_member(gone) == []
    log = list(gov.node.governance.decision_log())
    assert verify(log, head=gov.node.governance.decision_log_head()).ok
    assert not any(gone in line for line in log)
    # the release is still accounted for: one entry for the profile, naming no member, which the
    # four others still see
    with gov.node.store._read() as conn:
        rows = conn.execute("SELECT count(*) FROM access_log").fetchone()[0]
        linked = conn.execute(
            "SELECT count(*) FROM access_log JOIN member_pseudonyms USING (pseudonym)"
        ).fetchone()[0]
    assert (rows, linked) == (1, 0)
    assert all(len(gov.node.governance.access_for_member(m)) == 1 for m in members[1:])


def test_individual_grant_streams_each_member_under_a_pseudonym(gov: Running) -> None:
    members = [add_member(gov.node, GREEN, days=2, datasets=("demand", "generation")) for _ in range(2)]
    _, md = register(gov)
    grant = approved_grant(
        gov,
        md,
        data_request(
            granularity=pb.GRANULARITY_INDIVIDUAL,
            fields=("kwh", "member_ref"),
            days=2,
            datasets=("demand", "generation"),
        ),
    )
    chunks = fetch(gov, grant.token)
    series = [c.individual for c in chunks if c.HasField("individual")]
    assert {(s.dataset, len(s.period_start_unix)) for s in series} == {("demand", 96), ("generation", 96)}
    assert len({s.member_ref for s in series}) == 2
    assert not any(m in s.member_ref for s in series for m in members)
    assert chunks[-1].summary.members_released == 2
    assert all(len(gov.node.governance.access_for_member(m)) == 2 for m in members)  # one per dataset
    assert Granularity.INDIVIDUAL.value in {
        e.granularity for e in gov.node.governance.access_for_member(members[0])
    }
