"""Attacks on the federation transport with `[federation] plaintext = true`: peer-only services
reached through the public port, a peer's stolen token used from another co-op's certificate,
and an unpinned certificate on the peer port. Each one is refused."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import grpc
import pytest

from coopfed.federation.tls import channel_options
from coopfed.node.client import bearer
from coopfed.node.federation import convert
from coopfed.node.federation.client import access_token
from coopfed.v1 import federation_pb2, federation_pb2_grpc, forecast_pb2, forecast_pb2_grpc
from tests.federation_node.conftest import POLICIES, RunningNode, grantee_of, running
from tests.federation_node.test_key_rotation import ASK

pytestmark = pytest.mark.integration
PLAIN = {"COOPFED_FEDERATION__PLAINTEXT": "true"}


def _join(who: RunningNode, peer: RunningNode) -> None:
    grantee_of(who.node).pin(asyncio.run(grantee_of(who.node).preview_join(peer.public, plaintext=True)))


@pytest.fixture(scope="module")
def coops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningNode]]:
    """Three co-ops in development mode. b pins a and c; a and c pin b; d pins b, unknown to b."""
    root = tmp_path_factory.mktemp("plaintext")
    with contextlib.ExitStack() as stack:
        nodes = {n: stack.enter_context(running(root / n, f"coop-{n}", POLICIES, PLAIN)) for n in "abcd"}
        for who, peer in (("b", "a"), ("b", "c"), ("a", "b"), ("c", "b"), ("d", "b")):
            _join(nodes[who], nodes[peer])
        yield nodes


def _token(who: RunningNode, audience: str) -> tuple[tuple[str, str], ...]:
    assert who.node.federation is not None
    return bearer(access_token(who.node.federation, who.node.keys, audience))


def _peer_channel(caller: RunningNode, target: RunningNode) -> grpc.Channel:
    """Mutual TLS from `caller`'s certificate to `target`'s peer port, trusting target's certificate."""
    assert caller.node.federation is not None
    assert target.node.federation is not None
    creds = caller.node.federation.tls.channel_credentials([target.node.federation.tls.cert_pem])
    return grpc.secure_channel(target.peer, creds, options=channel_options(target.id))


def test_a_pinned_peer_still_gets_its_grant_over_mutual_tls(coops: dict[str, RunningNode]) -> None:
    held, _ = asyncio.run(grantee_of(coops["a"].node).obtain_grant("coop-b", ASK))
    assert held.issuer == "coop-b"


@pytest.mark.parametrize(
    "call",
    [
        lambda ch, md: federation_pb2_grpc.FederationServiceStub(ch).RequestGrant(
            convert.ask_to_proto(ASK), metadata=md, timeout=10
        ),
        lambda ch, md: federation_pb2_grpc.FederationServiceStub(ch).GetRevocations(
            federation_pb2.GetRevocationsRequest(), metadata=md, timeout=10
        ),
        lambda ch, md: next(
            federation_pb2_grpc.FederationServiceStub(ch).FetchAggregates(
                federation_pb2.FetchAggregatesRequest(), metadata=md, timeout=10
            )
        ),
        lambda ch, md: forecast_pb2_grpc.ModelExchangeServiceStub(ch).GetModel(
            forecast_pb2.GetModelRequest(), metadata=md, timeout=10
        ),
        lambda ch, md: forecast_pb2_grpc.ModelExchangeServiceStub(ch).PublishModel(
            forecast_pb2.PublishModelRequest(), metadata=md, timeout=10
        ),
    ],
    ids=["RequestGrant", "GetRevocations", "FetchAggregates", "GetModel", "PublishModel"],
)
def test_peer_services_are_not_on_the_public_port(coops: dict[str, RunningNode], call) -> None:
    """Even with a pinned peer's valid token, the public port does not serve peer methods."""
    with grpc.insecure_channel(coops["b"].public) as channel, pytest.raises(grpc.RpcError) as caught:
        call(channel, _token(coops["a"], "coop-b"))
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_the_public_port_still_serves_the_manifest_for_first_contact(coops: dict[str, RunningNode]) -> None:
    with grpc.insecure_channel(coops["b"].public) as channel:
        manifest = federation_pb2_grpc.FederationServiceStub(channel).GetManifest(
            federation_pb2.GetManifestRequest(), timeout=10
        )
    assert manifest.coop_id == "coop-b"


def test_a_stolen_peer_token_is_refused_from_another_pinned_cert(coops: dict[str, RunningNode]) -> None:
    """c is a pinned peer of b, but presents a's access token: the certificate is not a's."""
    with _peer_channel(coops["c"], coops["b"]) as channel, pytest.raises(grpc.RpcError) as caught:
        federation_pb2_grpc.FederationServiceStub(channel).RequestGrant(
            convert.ask_to_proto(ASK), metadata=_token(coops["a"], "coop-b"), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "not the one pinned for 'coop-a'" in caught.value.details()


def test_an_unpinned_certificate_cannot_reach_the_peer_port(coops: dict[str, RunningNode]) -> None:
    """d pinned b, but b never pinned d: the handshake fails before any method runs."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        asyncio.run(grantee_of(coops["d"].node).obtain_grant("coop-b", ASK))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_peer_port_speaks_no_plaintext(coops: dict[str, RunningNode]) -> None:
    with grpc.insecure_channel(coops["b"].peer) as channel, pytest.raises(grpc.RpcError) as caught:
        federation_pb2_grpc.FederationServiceStub(channel).GetManifest(
            federation_pb2.GetManifestRequest(), timeout=5
        )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
