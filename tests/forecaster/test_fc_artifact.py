"""Signed model artifacts: round trip, and rejection of tampering, wrong keys and malformed bytes."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from coopfed.forecaster import (
    ArtifactError,
    ArtifactFormatError,
    ArtifactMetadata,
    ArtifactVerificationError,
    Forecaster,
    ModelArtifact,
    sign_artifact,
)
from coopfed.forecaster.artifact import MAGIC

NAMES = ("a", "b", "c")
KEY = Ed25519PrivateKey.generate()


def _booster(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(200, 3)), rng.normal(size=(200, 2))
    dm = xgb.DMatrix(X, label=y, feature_names=list(NAMES))
    booster = xgb.train({"tree_method": "hist", "seed": 0, "nthread": 1}, dm, num_boost_round=3)
    return bytes(booster.save_raw("ubj"))


def _meta(**over: object) -> dict:
    meta = {
        "version": 3,
        "coop_id": "riverside",
        "kind": "local",
        "trained_at": "2025-01-01T00:00:00+00:00",
        "feature_names": NAMES,
        "targets": ("demand", "generation"),
        "training_rows": 200,
        "contributors": ("riverside",),
        "xgboost_version": xgb.__version__,
        "params": {"eta": 0.3, "seed": 0},
    }
    return {**meta, **over}


@pytest.fixture(scope="module")
def artifact() -> ModelArtifact:
    return sign_artifact(_booster(), _meta(), KEY, (_booster(2), _booster(3)))


def test_quantile_boosters_are_signed_with_the_point_booster(artifact: ModelArtifact) -> None:
    parsed = ModelArtifact.from_bytes(artifact.to_bytes())
    assert len(parsed.load_quantile_boosters(KEY.public_key())) == 2
    for forged in (
        dataclasses.replace(artifact, quantile_boosters=(_booster(2), _booster(4))),
        dataclasses.replace(artifact, quantile_boosters=(_booster(2),)),
    ):
        with pytest.raises(ArtifactVerificationError):
            forged.load_booster(KEY.public_key())


def test_round_trip_verifies_and_predicts_like_the_original(artifact: ModelArtifact, tmp_path: Path) -> None:
    parsed = ModelArtifact.load(artifact.save(tmp_path / "model.cfm"))
    assert parsed == artifact
    assert parsed.metadata.sha256 == artifact.metadata.sha256
    booster = parsed.load_booster(KEY.public_key())
    original = xgb.Booster()
    original.load_model(bytearray(_booster()))
    X = xgb.DMatrix(np.ones((2, 3)), feature_names=list(NAMES))
    np.testing.assert_array_equal(booster.predict(X), original.predict(X))


def test_tampered_booster_bytes_are_rejected(artifact: ModelArtifact) -> None:
    raw = bytearray(artifact.to_bytes())
    raw[-10] ^= 0x01
    tampered = ModelArtifact.from_bytes(bytes(raw))
    with pytest.raises(ArtifactVerificationError, match="SHA-256"):
        tampered.load_booster(KEY.public_key())
    swapped = dataclasses.replace(artifact, booster=_booster(seed=1))
    with pytest.raises(ArtifactVerificationError, match="SHA-256"):
        swapped.verify(KEY.public_key())


def test_tampered_metadata_is_rejected(artifact: ModelArtifact) -> None:
    for field, value in (("training_rows", 10**9), ("coop_id", "fellside"), ("version", 4)):
        forged_meta = dataclasses.replace(artifact.metadata, **{field: value})
        forged = dataclasses.replace(artifact, metadata=forged_meta, metadata_bytes=forged_meta.to_json())
        reparsed = ModelArtifact.from_bytes(forged.to_bytes())  # well formed ...
        with pytest.raises(ArtifactVerificationError, match="bad signature"):
            reparsed.verify(KEY.public_key())  # ... but not signed


def test_wrong_or_unsuitable_keys_are_rejected(artifact: ModelArtifact) -> None:
    with pytest.raises(ArtifactVerificationError, match="bad signature"):
        artifact.verify(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(ArtifactVerificationError, match="Ed25519 public key"):
        artifact.verify(X25519PrivateKey.generate().public_key())  # type: ignore[arg-type]
    with pytest.raises(ArtifactVerificationError, match="Ed25519 public key"):
        artifact.verify(KEY)  # type: ignore[arg-type]  # a private key is not a verifier
    with pytest.raises(TypeError):
        sign_artifact(_booster(), _meta(), X25519PrivateKey.generate())  # type: ignore[arg-type]


def test_forecaster_verifies_every_member_against_its_trainers_key(artifact: ModelArtifact) -> None:
    other_key = Ed25519PrivateKey.generate()
    other = sign_artifact(_booster(1), _meta(coop_id="fellside", training_rows=600), other_key)
    trusted = {"riverside": KEY.public_key(), "fellside": other_key.public_key()}
    with pytest.raises(ValueError, match="disagree"):  # these test boosters lack its features
        Forecaster.from_artifacts([artifact, other], trusted)
    with pytest.raises(ArtifactVerificationError, match="no trusted key"):
        Forecaster.from_artifacts([artifact, other], {"riverside": KEY.public_key()})
    swapped = {"riverside": other_key.public_key(), "fellside": KEY.public_key()}
    with pytest.raises(ArtifactVerificationError, match="bad signature"):
        Forecaster.from_artifacts([artifact, other], swapped)


def _container(meta: bytes, sig: bytes = b"\0" * 64, booster: bytes = b"x") -> bytes:
    return (
        MAGIC
        + struct.pack(">I", len(meta))
        + meta
        + struct.pack(">H", len(sig))
        + sig
        + struct.pack(">Q", len(booster))
        + booster
        + struct.pack(">H", 0)
    )


def test_malformed_containers_are_rejected(artifact: ModelArtifact) -> None:
    good = artifact.to_bytes()
    meta = artifact.metadata_bytes
    doc = json.loads(meta)
    cases = {
        "bad magic": b"CFMODEL9" + good[8:],
        "older format": b"CFMODEL1" + good[8:],
        "exceeds the data": good[:-1],
        "truncated": good[:10],
        "trailing bytes": good + b"\0",
        "exceeds": good[:8] + struct.pack(">I", 2**31) + good[12:],
        "64 bytes": _container(meta, sig=b"\0" * 63),
        "not valid JSON": _container(b"{not json"),
        "duplicate key": _container(meta[:-1] + b',"version":3}'),
        "exactly the fields": _container(json.dumps({**doc, "extra": 1}, sort_keys=True).encode()),
        "must be int": _container(
            json.dumps({**doc, "training_rows": True}, sort_keys=True, separators=(",", ":")).encode()
        ),
        "canonical": _container(json.dumps(doc, sort_keys=True).encode()),
        "unsupported": _container(
            json.dumps({**doc, "format": "coopfed-model/9"}, sort_keys=True, separators=(",", ":")).encode()
        ),
    }
    for message, data in cases.items():
        with pytest.raises(ArtifactFormatError, match=message):
            ModelArtifact.from_bytes(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=400))
def test_arbitrary_bytes_never_crash_the_parser(noise: bytes, cut: int) -> None:
    for data in (noise, MAGIC + noise, _container(b"{}", booster=noise)[: cut + 8]):
        with contextlib.suppress(ArtifactError):
            ModelArtifact.from_bytes(data)


def test_metadata_round_trips_canonically(artifact: ModelArtifact) -> None:
    again = ArtifactMetadata.from_json(artifact.metadata.to_json())
    assert again == artifact.metadata
    assert artifact.metadata.feature_names == NAMES
