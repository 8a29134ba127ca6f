"""Training on the node: consent per profile, model federation over mutual TLS with verified
artifacts, forged and tampered artifacts refused, pooled training on aggregates under a grant."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc_status import rpc_status

from coopfed.forecaster import ArtifactVerificationError, ModelArtifact, sign_artifact
from coopfed.forecaster.features import build_features
from coopfed.node.client import bearer
from coopfed.node.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from coopfed.node.federation.client import PeerClient
from coopfed.node.federation.decide import GrantAsk
from coopfed.node.forecast.models import (
    TRAINING_PATH,
    accept_peer_artifact,
    trusted_keys,
)
from coopfed.node.model import Flow
from coopfed.node.runtime import init_node, open_node
from coopfed.node.services import forecasting_of, model_exchange_of
from coopfed.node.settings import load_settings
from coopfed.node.storage import Home
from coopfed.v1 import common_pb2, forecast_pb2, forecast_pb2_grpc
from tests.federation_node.conftest import POLICIES, grantee_of

from .conftest import CONSENTS, GREEN, SPECS, Coops, totals

pytestmark = pytest.mark.integration
FORECASTING = "dpv:CommunityEnergyForecasting"


def _members(settings: object) -> list[int]:
    return [i for i in range(8) if CONSENTS[i] == settings]


def test_own_aggregates_follow_consent_per_profile(coops: Coops) -> None:
    node, readings = coops.a.node, coops.readings["coop-a"]
    internal = forecasting_of(node).data.own_aggregates(Flow.INTERNAL)
    shared = forecasting_of(node).data.own_aggregates(Flow.COOP_TO_COOP)
    np.testing.assert_array_equal(internal.coop.aggregates.index, readings.periods)
    for ds in ("demand", "generation", "export"):
        np.testing.assert_allclose(
            internal.coop.aggregates[ds], totals(readings, ds, list(range(8))), rtol=1e-6
        )
        np.testing.assert_allclose(
            shared.coop.aggregates[ds], totals(readings, ds, _members(GREEN)), rtol=1e-6
        )
    assert (internal.coop.aggregates["members"] == 8).all()
    assert (shared.coop.aggregates["members"] == 6).all()
    assert [len(ids) for ids in internal.consenting.values()] == [2, 2, 2]  # red is internal too
    assert [len(ids) for ids in shared.consenting.values()] == [1, 1, 1]
    assert shared.min_group_size == 5
    assert shared.coop.site.latitude == SPECS["coop-a"].site.latitude  # from [place]


def _peer_call(coops: Coops, method: str, request: object) -> object:
    """Call B's ModelExchangeService as A: mutual TLS, A's pinned certificate and access token."""
    a = coops.a.node

    async def call() -> object:
        fed = a.federation
        async with PeerClient(fed, a.keys, fed.state.peer("coop-b")) as client:
            stub = forecast_pb2_grpc.ModelExchangeServiceStub(client.channel)
            return await getattr(stub, method)(request, metadata=bearer(client.access_token()), timeout=30)

    return asyncio.run(call())


def _refusal(coops: Coops, artifact: bytes) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.RpcError) as info:
        _peer_call(coops, "PublishModel", forecast_pb2.PublishModelRequest(artifact=artifact))
    detail = common_pb2.ErrorDetail()
    status = rpc_status.from_call(info.value)
    assert status is not None
    assert status.details[0].Unpack(detail)
    return info.value.code(), detail.code, info.value.details()


@pytest.fixture(scope="module")
def federated(coops: Coops) -> Iterator[dict[str, ModelArtifact]]:
    """Each co-op trains a local model; A publishes its model to B and fetches B's."""
    trained = {run.id: forecasting_of(run.node).models.train_local_model() for run in (coops.a, coops.b)}
    report = asyncio.run(model_exchange_of(coops.a.node).exchange())
    assert report.failures == {}
    assert report.published == {"coop-b": trained["coop-a"].artifact.metadata.version}
    assert report.fetched == {"coop-b": trained["coop-b"].artifact.metadata.version}
    return {cid: t.artifact for cid, t in trained.items()}


def test_federated_ensemble_is_verified_and_weighted_by_data(coops: Coops, federated: dict) -> None:
    for run in (coops.a, coops.b):  # B holds A's model and A holds B's, both verified
        ensemble = forecasting_of(run.node).models.load_ensemble("federated")
        assert [r.trained_by for r in ensemble.records] == [
            run.id,
            "coop-b" if run.id == "coop-a" else "coop-a",
        ]
        assert ensemble.skipped == {}
    rows = np.array([federated[r.trained_by].metadata.training_rows for r in ensemble.records], float)
    np.testing.assert_allclose([r.weight for r in ensemble.records], rows / rows.sum())
    meta = federated["coop-a"].metadata
    assert (meta.kind, meta.contributors) == ("local", ("coop-a",))
    federated["coop-a"].verify(coops.a.node.keys.signer.public_key)  # signed by A's active key
    forecast, _ = forecasting_of(coops.a.node).make_forecast()
    assert forecast.mode == "federated"
    assert len(forecast.periods) == 96
    assert {m.trained_by for m in forecast.models} == {"coop-a", "coop-b"}
    # A's log says what A's model was trained on: consent to coop_to_coop, k = 5.
    coops.a.node.decision_log.flush()
    logged = [json.loads(e) for e in coops.a.node.governance.decision_log()]
    training = next(e for e in logged if e["path"] == TRAINING_PATH)
    assert training["input"]["flow"] == "coop_to_coop"
    assert training["result"]["min_group_size"] == 5


def test_forged_tampered_and_stale_artifacts_are_refused(coops: Coops, federated: dict) -> None:
    genuine = federated["coop-a"]
    fields = {k: v for k, v in dataclasses.asdict(genuine.metadata).items() if k != "sha256"}
    newer = {**fields, "version": genuine.metadata.version + 10}
    unpinned = sign_artifact(genuine.booster, newer, Ed25519PrivateKey.generate())
    assert _refusal(coops, unpinned.to_bytes())[:2] == (
        grpc.StatusCode.PERMISSION_DENIED,
        "artifact.unverified",
    )
    key = coops.a.node.keys.signer.private_key
    honest = sign_artifact(genuine.booster, newer, key).to_bytes()
    flipped = bytearray(honest)
    flipped[-100] ^= 0x01  # one bit of the booster
    assert _refusal(coops, bytes(flipped))[:2] == (grpc.StatusCode.PERMISSION_DENIED, "artifact.unverified")
    rows = f'"training_rows":{genuine.metadata.training_rows}'.encode()
    inflated = honest.replace(rows, rows[:-1] + (b"1" if rows[-1:] != b"1" else b"2"))
    assert len(inflated) == len(honest)
    assert inflated != honest
    assert _refusal(coops, inflated)[:2] == (grpc.StatusCode.PERMISSION_DENIED, "artifact.unverified")
    as_b = sign_artifact(genuine.booster, {**newer, "coop_id": "coop-b"}, key)
    assert _refusal(coops, as_b.to_bytes())[:2] == (grpc.StatusCode.PERMISSION_DENIED, "forecast.not_trainer")
    assert _refusal(coops, b"CFMODEL1garbage")[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "artifact.malformed")
    code, detail, message = _refusal(coops, genuine.to_bytes())
    assert (code, detail) == (grpc.StatusCode.FAILED_PRECONDITION, "forecast.stale_model")
    assert "not newer" in message
    # Nothing refused was kept: B still holds A's genuine version only.
    held = coops.b.node.forecast.store.latest_model("coop-a", "local")
    assert held is not None
    assert held.version == genuine.metadata.version


def test_models_only_from_aligned_peers_and_only_local(coops: Coops, federated: dict) -> None:
    b, peer_a = coops.b.node, coops.b.node.federation.state.peer("coop-a")
    pinned = trusted_keys(b.keys, b.federation, b.node_id, "coop-a")
    genuine = federated["coop-a"]
    fields = {k: v for k, v in dataclasses.asdict(genuine.metadata).items() if k != "sha256"}
    key = coops.a.node.keys.signer.private_key
    newer = sign_artifact(genuine.booster, {**fields, "version": genuine.metadata.version + 20}, key)
    with pytest.raises(PermissionDenied, match="not aligned"):
        accept_peer_artifact(
            b.forecast.store, pinned, dataclasses.replace(peer_a, aligned=False), newer.to_bytes()
        )
    pooled = sign_artifact(
        genuine.booster, {**fields, "version": genuine.metadata.version + 20, "kind": "pooled"}, key
    )
    with pytest.raises(InvalidArgument, match="only local models"):
        accept_peer_artifact(b.forecast.store, pinned, peer_a, pooled.to_bytes())
    assert b.forecast.store.latest_model("coop-a", "local").version == genuine.metadata.version


def test_model_exchange_is_not_served_on_the_public_port(coops: Coops, federated: dict) -> None:
    with grpc.insecure_channel(coops.b.public) as channel:
        stub = forecast_pb2_grpc.ModelExchangeServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.GetModel(forecast_pb2.GetModelRequest(), timeout=10)
    assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_a_model_altered_on_disk_is_left_out_or_refused(coops: Coops, federated: dict, tmp_path) -> None:
    store = coops.a.node.forecast.store
    peer_file = store.latest_model("coop-b", "local")
    own_file = store.latest_model("coop-a", "local")
    for file in (peer_file, own_file):
        shutil.copy(file.path, tmp_path / file.coop_id)
    try:
        data = bytearray(peer_file.path.read_bytes())
        data[-50] ^= 0x01
        peer_file.path.write_bytes(bytes(data))
        ensemble = forecasting_of(coops.a.node).models.load_ensemble("federated")
        assert [r.trained_by for r in ensemble.records] == ["coop-a"]
        assert "SHA-256" in ensemble.skipped["coop-b"]
        own = bytearray(own_file.path.read_bytes())
        own[-50] ^= 0x01
        own_file.path.write_bytes(bytes(own))
        with pytest.raises(ArtifactVerificationError):
            forecasting_of(coops.a.node).models.load_ensemble("federated")
    finally:
        for file in (peer_file, own_file):
            shutil.copy(tmp_path / file.coop_id, file.path)


def test_pooled_training_uses_aggregates_fetched_under_a_grant(coops: Coops) -> None:
    a, b = coops.a.node, coops.b.node
    purpose = forecasting_of(a).data.forecast_policy().purpose
    assert peer_aggregates_now(a, purpose) == ([], {})  # no grant held yet: nothing to pool
    periods = coops.readings["coop-b"].periods
    ask = GrantAsk(
        ("demand", "generation", "export"), (), "aggregate", "coop_to_coop", FORECASTING,
        int(periods[0]), int(periods[-1]) + 1800,
    )  # fmt: skip
    held, _ = asyncio.run(grantee_of(a).obtain_grant("coop-b", ask))
    peers, problems = asyncio.run(forecasting_of(a).data.peer_aggregates(purpose))
    assert problems == {}
    assert [p.coop.coop_id for p in peers] == ["coop-b"]
    assert peers[0].grant_id == held.jti
    # What B released is what B's consent policy allows for coop_to_coop, k = 5: its green members.
    released = peers[0].coop.aggregates
    expected = forecasting_of(b).data.own_aggregates(Flow.COOP_TO_COOP).coop.aggregates
    np.testing.assert_allclose(
        released[["demand", "generation", "members"]], expected[["demand", "generation", "members"]]
    )
    trained = forecasting_of(a).models.train_pooled_model(peers, rounds=5)
    meta = trained.artifact.metadata
    assert (meta.kind, meta.coop_id, meta.contributors) == ("pooled", "coop-a", ("coop-a", "coop-b"))
    own_only = forecasting_of(a).models.train_pooled_model([], rounds=1).artifact.metadata
    assert meta.training_rows > own_only.training_rows
    forecast, _ensemble = forecasting_of(a).make_forecast(mode="pooled")
    assert [(m.trained_by, m.kind, m.version) for m in forecast.models] == [
        ("coop-a", "pooled", own_only.version)
    ]
    # B logged the release that A trained on.
    b.decision_log.flush()
    releases = [json.loads(e) for e in b.governance.decision_log()]
    assert any(e["decision_id"] == peers[0].decision_id for e in releases)


def peer_aggregates_now(node, purpose):
    return asyncio.run(forecasting_of(node).data.peer_aggregates(purpose))


def test_federated_training_needs_k_consenting_members(tmp_path) -> None:
    config = init_node(tmp_path, node_id="coop-small", name="small", listen="127.0.0.1:0", policies=POLICIES)
    with open_node(load_settings(config, environ={})) as node:
        for i in range(4):  # four green members: fewer than k = 5 may leave the co-op
            node.store.create_member(f"m{i}", f"Member {i}", GREEN, admitted_by="test")
            node.store.put_readings(
                f"m{i}", [("demand", np.arange(0, 1800 * 48 * 30, 1800), np.ones(48 * 30))]
            )
        assert len(forecasting_of(node).data.own_aggregates(Flow.INTERNAL).coop.aggregates) == 48 * 30
        with pytest.raises(FailedPrecondition, match="at least k = 5 members who consent to sharing"):
            forecasting_of(node).models.train_local_model()


def test_declared_capacity_reaches_the_forecaster_from_k_members_and_travels_with_a_release(
    coops: Coops,
) -> None:
    a, b = coops.a.node, coops.b.node
    ids = [str(m) for m in coops.readings["coop-b"].members["member_id"]]  # 0-5 green, 6-7 red
    purpose = forecasting_of(a).data.forecast_policy().purpose
    periods = coops.readings["coop-b"].periods
    ask = GrantAsk(
        ("demand", "generation", "export"), (), "aggregate", "coop_to_coop", FORECASTING,
        int(periods[0]), int(periods[-1]) + 1800,
    )  # fmt: skip
    asyncio.run(grantee_of(a).obtain_grant("coop-b", ask))

    def capacities() -> tuple[object, object, object]:
        [peer], problems = peer_aggregates_now(a, purpose)
        assert problems == {}
        data = forecasting_of(b).data
        internal = data.own_aggregates(Flow.INTERNAL).coop.capacity
        return internal, data.own_aggregates(Flow.COOP_TO_COOP).coop.capacity, peer.coop.capacity

    try:
        assert capacities() == (None, None, None)  # nothing declared: the 28-day peak fallback
        for m in ids[:4]:
            b.store.set_home(m, Home(solar_kw=4.0))
        b.store.set_home(ids[5], Home(heating="gas"))  # a home, but no capacity declared
        b.store.set_home(ids[6], Home(solar_kw=1.0, wind_kw=10.0))  # red: internal use only
        # Five declared, counting the red member: enough inside the co-op, not to leave it (k = 5).
        assert capacities() == ({"pv": 17.0, "wind": 10.0}, None, None)
        b.store.set_home(ids[4], Home(solar_kw=2.5, battery_kwh=5.0))
        shared = {"pv": 18.5, "wind": 0.0}
        assert capacities() == ({"pv": 19.5, "wind": 10.0}, shared, shared)
        rows = build_features(peer_aggregates_now(a, purpose)[0][0].coop, periods[-48:-47])
        np.testing.assert_allclose(rows.X["pv_share"], 1.0)  # the mix the model reads
    finally:
        for m in ids:
            b.store.set_home(m, None)
