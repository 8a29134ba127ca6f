"""Three real co-op nodes on loopback over mutual TLS: A and B aligned, C not.

A joins B, obtains a grant and fetches a year of aggregates; C is refused with the policy's
reasons; a member of B turning red leaves A's next fetch; cells under k are withheld; revoking
the grant stops A at once at B and, after A's next refresh, at A itself; forged grants are refused;
B's members see A's fetches in their access log, and members who did not consent see none.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_status import rpc_status

from coopfed.federation.grants import Constraints, GrantScope, issue_grant
from coopfed.federation.tls import TlsIdentity, channel_options
from coopfed.node import cli
from coopfed.node.client import bearer
from coopfed.node.errors import PermissionDenied
from coopfed.node.federation import grantee
from coopfed.node.federation.client import PeerClient, access_token
from coopfed.node.federation.decide import GrantAsk
from coopfed.node.federation.refresh import RefreshReport
from coopfed.node.model import ConsentLevel, ConsentSettings, Flow
from coopfed.v1 import common_pb2, federation_pb2, federation_pb2_grpc, member_pb2, member_pb2_grpc

from .conftest import (
    FORECASTING,
    YEAR_END,
    YEAR_START,
    RunningNode,
    coop_policies,
    expected_totals,
    grantee_of,
    populate,
    running,
)

pytestmark = pytest.mark.integration

GREEN = ConsentSettings(level=ConsentLevel.GREEN)
CONSENTS = [
    *[GREEN] * 8,  # m00..m07
    ConsentSettings(level=ConsentLevel.AMBER, choices={"demand": frozenset({Flow.COOP_TO_COOP})}),  # m08
    ConsentSettings(level=ConsentLevel.RED, persona="community_first"),  # m09: the persona shares
    ConsentSettings(level=ConsentLevel.RED),  # m10
    ConsentSettings(level=ConsentLevel.AMBER, choices={"generation": frozenset({Flow.COOP_TO_COOP})}),  # m11
]
CONSENTING = {
    "demand": [f"m{i:02d}" for i in range(10)],
    "generation": [*(f"m{i:02d}" for i in range(8)), "m09", "m11"],
    "export": [*(f"m{i:02d}" for i in range(8)), "m09"],
}
LAST_DAY_MEMBERS = 3  # fewer than k = 5: the year's last day is withheld
YEAR = GrantAsk(
    ("demand", "export", "generation"), (), "aggregate", "coop_to_coop", FORECASTING, YEAR_START, YEAR_END
)


class Coops:
    def __init__(self, a: RunningNode, b: RunningNode, c: RunningNode, values: dict) -> None:
        self.a, self.b, self.c, self.values = a, b, c, values


@pytest.fixture(scope="module")
def coops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coops]:
    tmp = tmp_path_factory.mktemp("coops")
    unaligned = coop_policies(
        tmp / "c", aims=[FORECASTING, "dpv:Marketing", "dpv:CommercialResearch"], legal_form="company"
    )
    fast_refresh = {"COOPFED_FEDERATION__REFRESH_INTERVAL_S": "1"}
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(running(tmp / "a", "coop-a", coop_policies(tmp / "a"), fast_refresh))
        b = stack.enter_context(running(tmp / "b", "coop-b", coop_policies(tmp / "b")))
        c = stack.enter_context(running(tmp / "c", "coop-c", unaligned))
        values = populate(b.node, CONSENTS, last_day_members=LAST_DAY_MEMBERS)
        # A joins B with the CLI; B pins A back; B and C pin each other although not aligned.
        assert (
            cli.main(["federation", "join", "--config", str(a.config), b.public, "--plaintext", "--yes"]) == 0
        )
        _pin(b, a)
        _pin(b, c, allow_unaligned=True)
        _pin(c, b, allow_unaligned=True)
        yield Coops(a, b, c, values)


def _pin(who: RunningNode, peer: RunningNode, *, allow_unaligned: bool = False) -> None:
    preview = asyncio.run(grantee_of(who.node).preview_join(peer.public, plaintext=True))
    grantee_of(who.node).pin(preview, allow_unaligned=allow_unaligned)


def _detail(exc: grpc.RpcError) -> common_pb2.ErrorDetail:
    status = rpc_status.from_call(exc)
    assert status is not None
    detail = common_pb2.ErrorDetail()
    assert status.details[0].Unpack(detail)
    return detail


def _check_year(result: grantee.Aggregates, values: dict, consenting: dict[str, list[str]]) -> None:
    """Every released cell equals the sum over consenting members; the last day is withheld."""
    periods = np.arange(YEAR_START, YEAR_END, 1800)
    last_day = periods >= YEAR_END - 86_400
    for dataset, members in consenting.items():
        series = result.series[dataset]
        kwh, counts = expected_totals(values, members, dataset)
        np.testing.assert_array_equal(series.periods, periods[~last_day])
        np.testing.assert_allclose(series.kwh, kwh[~last_day], rtol=1e-9)
        np.testing.assert_array_equal(series.member_count, counts[~last_day])
        np.testing.assert_array_equal(series.suppressed, periods[last_day])
    assert result.summary.cells_suppressed == 3 * 48
    assert result.header.min_group_size == 5


def test_a_fetches_a_year_then_consent_and_revocation_take_effect(coops: Coops) -> None:
    a, b = coops.a, coops.b
    held, reasons = asyncio.run(grantee_of(a.node).obtain_grant("coop-b", YEAR))
    assert held.scope.datasets == {"demand", "generation", "export"}
    assert held.constraints.min_group_size == 5
    assert any("community energy forecasting" in r for r in reasons)

    year = asyncio.run(grantee_of(a.node).fetch_aggregates(held.jti))
    assert sum(s.periods.size for s in year.series.values()) == 3 * (17_520 - 48)
    _check_year(year, coops.values, CONSENTING)
    # B's decision log holds the grant decision, the consent decisions and the release.
    b.node.decision_log.flush()
    logged = {e["decision_id"]: e for e in map(json.loads, b.node.governance.decision_log())}
    release = logged[year.header.decision_id]
    assert release["path"] == "coopfed/federation/release"
    assert release["input"]["grant_id"] == held.jti
    assert sorted(release["result"]["consenting_profiles"]) == ["demand", "export", "generation"]
    grants = [e for e in logged.values() if e["path"] == "coopfed/federation/grant/decision"]
    assert grants[-1]["result"]["allowed"] is True

    # m03 turns red through the member API: gone from the very next fetch.
    with grpc.insecure_channel(b.public) as channel:
        stub = member_pb2_grpc.MemberServiceStub(channel)
        red = member_pb2.ConsentSettings(level=common_pb2.CONSENT_LEVEL_RED)
        stub.SetConsent(
            member_pb2.SetConsentRequest(settings=red),
            metadata=bearer(b.node.credentials.issue_member_token("m03")),
        )
    after = asyncio.run(grantee_of(a.node).fetch_aggregates(held.jti))
    _check_year(after, coops.values, {ds: [m for m in ms if m != "m03"] for ds, ms in CONSENTING.items()})

    # B revokes with the CLI: B refuses A's next fetch at once, with the reason.
    revoked = threading.Event()

    def on_refresh(report: RefreshReport) -> None:
        if a.node.federation.state.held_grant(held.jti).revoked_reason is not None:
            revoked.set()

    a.server.peers.listeners.append(on_refresh)
    argv = ["federation", "revoke", "--config", str(b.config), held.jti, "--reason", "board decision 12"]
    assert cli.main(argv) == 0
    with pytest.raises(grpc.RpcError) as refused:
        asyncio.run(grantee_of(a.node).fetch_aggregates(held.jti))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _detail(refused.value).code == "token.revoked"
    assert "board decision 12" in refused.value.details()
    # A's refresh task (every second here) learns it from B's published list; A stops too.
    assert revoked.wait(timeout=20)
    with pytest.raises(PermissionDenied, match="board decision 12"):
        asyncio.run(grantee_of(a.node).fetch_aggregates(held.jti))


def _access(b: RunningNode, member_id: str) -> list[member_pb2.DataAccess]:
    """What the member sees through MemberService.ListDataAccess, with the member's own token."""
    with grpc.insecure_channel(b.public) as channel:
        stub = member_pb2_grpc.MemberServiceStub(channel)
        token = bearer(b.node.credentials.issue_member_token(member_id))
        return list(stub.ListDataAccess(member_pb2.ListDataAccessRequest(), metadata=token).entries)


def test_members_see_a_peers_fetch_in_their_access_log(coops: Coops) -> None:
    a, b = coops.a, coops.b
    ask = GrantAsk(
        ("demand", "generation"), (), "aggregate", "coop_to_coop", FORECASTING, YEAR_START, YEAR_END
    )
    held, _ = asyncio.run(grantee_of(a.node).obtain_grant("coop-b", ask))
    fetched = asyncio.run(grantee_of(a.node).fetch_aggregates(held.jti))
    [issued] = [d for d in b.node.federation.state.decisions() if (d["grant"] or {}).get("jti") == held.jti]
    b.node.decision_log.flush()
    logged = {e["decision_id"]: e for e in map(json.loads, b.node.governance.decision_log())}

    def under_grant(member_id: str) -> list[member_pb2.DataAccess]:
        return [e for e in _access(b, member_id) if e.grant_id == held.jti]

    green = under_grant("m00")
    assert sorted(e.dataset for e in green) == ["demand", "generation"]
    for entry in green:
        assert (entry.organisation_id, entry.organisation_name) == ("coop-a", "coop-a co-op")
        assert (entry.purpose, entry.flow) == (FORECASTING, common_pb2.FLOW_COOP_TO_COOP)
        assert entry.purpose_label == b.node.policy_data["purposes"][FORECASTING]["label"]
        assert (entry.granularity, entry.period.start_unix, entry.period.end_unix) == (
            "aggregate", YEAR_START, YEAR_END,
        )  # fmt: skip
        assert (entry.release_id, entry.decision_id) == (fetched.header.decision_id, issued["decision_id"])
        assert logged[entry.decision_id]["path"] == "coopfed/federation/grant/decision"
        consent = logged[entry.consent_decision_id]
        assert (consent["path"], consent["result"]["allowed"]) == ("coopfed/consent/decision", True)
    # amber members see only the datasets they chose to share; members who did not consent, nothing
    assert [e.dataset for e in under_grant("m08")] == ["demand"]
    assert [e.dataset for e in under_grant("m11")] == ["generation"]
    assert _access(b, "m10") == []  # red: nothing of theirs has left the co-op
    # one entry per member and dataset released, for the members the consent policy let in
    still_red = b.node.store.get_member("m03").settings.level is ConsentLevel.RED  # set by another test
    expected = {
        (m, ds) for ds in ("demand", "generation") for m in CONSENTING[ds] if not (m == "m03" and still_red)
    }
    entries = {
        (m, e.dataset)
        for m in coops.values
        for e in b.node.governance.access_for_member(m)
        if e.grant_id == held.jti
    }
    assert entries == expected
    assert sum(len(under_grant(m)) for m in coops.values) == len(expected)


def test_unaligned_coop_is_refused_with_the_policy_reasons(coops: Coops) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        asyncio.run(grantee_of(coops.c.node).obtain_grant("coop-b", YEAR))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert _detail(refused.value).code == "federation.grant_refused"
    assert "coop-c co-op is organised as 'company'" in refused.value.details()
    assert "pursues marketing" in refused.value.details()
    assert not coops.c.node.federation.state.held()


def test_pinning_an_unaligned_coop_needs_the_operator(coops: Coops) -> None:
    with pytest.raises(PermissionDenied, match=r"not aligned with this co-op: .*organised as 'company'"):
        _pin(coops.a, coops.c)
    assert "coop-c" not in coops.a.node.federation.state.peers()


def _scope() -> GrantScope:
    return GrantScope(
        datasets={"demand"}, period_start=YEAR_START, period_end=YEAR_END, purpose=FORECASTING,
        flow="coop_to_coop", fields={"kwh", "member_count"},
    )  # fmt: skip


async def _fetch_as(who: RunningNode, peer_id: str, token: str) -> list[federation_pb2.AggregatesChunk]:
    fed = who.node.federation
    async with PeerClient(fed, who.node.keys, fed.state.peer(peer_id)) as client:
        return [chunk async for chunk in client.fetch(token, federation_pb2.FetchAggregatesRequest())]


def _refusal(who: RunningNode, token: str) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as refused:
        asyncio.run(_fetch_as(who, "coop-b", token))
    return refused.value.code(), _detail(refused.value).code


def test_forged_foreign_and_expired_grants_are_refused(coops: Coops) -> None:
    a, b, c = coops.a, coops.b, coops.c
    unauthenticated = grpc.StatusCode.UNAUTHENTICATED

    def grant(ring, **kw) -> str:
        claims = {"issuer": "coop-b", "subject": "coop-a", "audience": "coop-b", **kw}
        return issue_grant(ring, scope=_scope(), constraints=Constraints(5), **claims)

    assert _refusal(a, grant(c.node.keys)) == (unauthenticated, "token.unknown_key")  # C's key, B's name
    assert _refusal(a, grant(c.node.keys, issuer="coop-c")) == (unauthenticated, "token.bad_issuer")
    assert _refusal(a, grant(b.node.keys, audience="coop-c")) == (unauthenticated, "token.bad_audience")
    expired = grant(b.node.keys, now=int(time.time()) - 7200, ttl=3600)
    assert _refusal(a, expired) == (unauthenticated, "token.expired")
    # B's own valid grant to A works for A only, and only with A's pinned certificate.
    valid = grant(b.node.keys)
    assert asyncio.run(_fetch_as(a, "coop-b", valid))[-1].summary.cells_released > 0
    assert _refusal(c, valid) == (unauthenticated, "federation.certificate")
    # A third party's grant (flow 4) issued by B does not release aggregates to a peer.
    third = issue_grant(
        b.node.keys, issuer="coop-b", subject="coop-a", audience="coop-b",
        scope=GrantScope(datasets={"demand"}, period_start=YEAR_START, period_end=YEAR_END,
                         purpose=FORECASTING, flow="third_party"),
    )  # fmt: skip
    assert _refusal(a, third) == (grpc.StatusCode.PERMISSION_DENIED, "grant.wrong_flow")


def test_public_port_and_unpinned_clients_are_refused(coops: Coops) -> None:
    a, b = coops.a, coops.b
    token = issue_grant(b.node.keys, issuer="coop-b", subject="coop-a", audience="coop-b", scope=_scope())
    with grpc.insecure_channel(b.public) as channel:  # no client certificate on the public port
        stub = federation_pb2_grpc.FederationServiceStub(channel)
        assert stub.GetManifest(federation_pb2.GetManifestRequest()).coop_id == "coop-b"
        with pytest.raises(grpc.RpcError) as refused:
            list(stub.FetchAggregates(federation_pb2.FetchAggregatesRequest(), metadata=bearer(token)))
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED  # peer methods: peer port only
    # A grant is not an access token, nor the other way round.
    assert _refusal(a, access_token(a.node.federation, a.node.keys, "coop-b"))[1] == "federation.credential"
    # A node nobody pinned cannot even complete the handshake.
    stranger = TlsIdentity.create("coop-d")
    creds = stranger.channel_credentials([b.node.federation.tls.cert_pem])
    with grpc.secure_channel(b.peer, creds, options=channel_options("coop-b")) as channel:
        stub = federation_pb2_grpc.FederationServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetManifest(federation_pb2.GetManifestRequest(), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_join_asks_before_pinning(coops: Coops, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(cli.console, "input", lambda prompt: "n")
    argv = ["federation", "join", "--config", str(coops.a.config), coops.c.public, "--plaintext"]
    assert cli.main(argv) == 1
    shown = capsys.readouterr().out
    assert "coop-c co-op" in shown
    assert "not aligned" in shown
    assert "signing key" in shown
    assert coops.c.node.federation.tls.fingerprint in shown
    assert "coop-c" not in coops.a.node.federation.state.peers()
    argv = ["federation", "join", "--config", str(coops.a.config), coops.b.public, "--plaintext"]
    assert cli.main(argv) == 1
    assert "coop-b is pinned already; pinning again changes nothing" in capsys.readouterr().out


def test_peer_manifest_is_pinned_as_published(coops: Coops, tmp_path: Path) -> None:
    pinned = coops.a.node.federation.state.peer("coop-b").manifest
    b = coops.b.node
    assert pinned.tls_certificate_pem == b.federation.tls.cert_pem
    assert set(pinned.jwks) == set(b.keys.jwks())
    assert pinned.policy_hash == b.policy.revision
    assert pinned.endpoints["peer"] == coops.b.peer
