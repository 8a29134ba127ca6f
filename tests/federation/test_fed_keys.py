"""Signing keys, JWK thumbprints, JWKS import, the key ring on disk and the trust store."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coopfed.federation.errors import KeyStoreError
from coopfed.federation.keys import (
    Jwks,
    KeyRing,
    SigningKey,
    TrustStore,
    b64url_decode,
    jwk_thumbprint,
    key_fingerprint,
    public_key_from_jwk,
    raw_public_bytes,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_thumbprint_matches_rfc8037_example() -> None:
    """RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key."""
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert jwk_thumbprint(jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_public_jwk_round_trips_and_names_its_use() -> None:
    key = SigningKey.generate()
    jwk = key.public_jwk()
    assert {k: jwk[k] for k in ("kty", "crv", "use", "alg")} == {
        "kty": "OKP",
        "crv": "Ed25519",
        "use": "sig",
        "alg": "EdDSA",
    }
    assert jwk["kid"] == key.kid == jwk_thumbprint(jwk)
    assert raw_public_bytes(public_key_from_jwk(jwk)) == raw_public_bytes(key.public_key)
    assert "d" not in jwk


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"kty": "RSA"}, "OKP"),
        ({"crv": "X25519"}, "OKP"),
        ({"d": "private"}, "private"),
        ({"use": "enc"}, "EdDSA"),
        ({"alg": "ES256"}, "EdDSA"),
        ({"x": "AAAA"}, "32 bytes"),
        ({"x": 123}, "32 bytes"),
        ({"kid": "my-own-name"}, "thumbprint"),
    ],
)
def test_jwk_import_is_strict(change: dict[str, Any], why: str) -> None:
    jwk = {**SigningKey.generate().public_jwk(), **change}
    with pytest.raises(KeyStoreError, match=why):
        public_key_from_jwk(jwk)


def test_jwks_round_trips_and_refuses_a_bad_member() -> None:
    keys = [SigningKey.generate() for _ in range(3)]
    jwks = Jwks(k.public_key for k in keys)
    again = Jwks.from_dict(json.loads(json.dumps(jwks.to_dict())))
    assert sorted(again) == sorted(k.kid for k in keys)
    doc = jwks.to_dict()
    doc["keys"].append({"kty": "oct", "k": "c2VjcmV0"})
    with pytest.raises(KeyStoreError):
        Jwks.from_dict(doc)
    with pytest.raises(KeyStoreError):
        Jwks.from_dict({"keys": "nope"})


def test_fingerprint_is_sha256_of_the_raw_key() -> None:
    key = SigningKey.generate()
    digest = hashlib.sha256(raw_public_bytes(key.public_key)).hexdigest().upper()
    fingerprint = key_fingerprint(key.public_key)
    assert fingerprint.replace(":", "") == digest
    assert len(fingerprint.split(":")) == 32


def test_signing_key_saves_owner_only_and_loads(tmp_path: Path) -> None:
    key = SigningKey.generate()
    key.save(tmp_path / "k.pem")
    assert mode(tmp_path / "k.pem") == 0o600
    assert SigningKey.load(tmp_path / "k.pem").kid == key.kid


def test_private_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    SigningKey.generate().save(tmp_path / "k.pem")
    os.chmod(tmp_path / "k.pem", 0o644)
    with pytest.raises(KeyStoreError, match="other users"):
        SigningKey.load(tmp_path / "k.pem")


def test_non_ed25519_or_garbage_pem_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError):
        SigningKey.from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KeyStoreError, match="not Ed25519"):
        SigningKey.from_pem(pem)


def test_key_ring_is_created_once_and_reloaded(tmp_path: Path) -> None:
    ring = KeyRing.load_or_create(tmp_path / "keys")
    assert mode(tmp_path / "keys") == 0o700
    assert mode(tmp_path / "keys" / f"{ring.signer.kid}.pem") == 0o600
    again = KeyRing.load_or_create(tmp_path / "keys")
    assert again.signer.kid == ring.signer.kid
    assert again.kids == [ring.signer.kid]


def test_rotation_persists_and_keeps_old_keys_verify_only(tmp_path: Path) -> None:
    ring = KeyRing.load_or_create(tmp_path / "keys")
    first = ring.signer.kid
    second = ring.rotate(now=ring.created_at(first) + 1).kid
    reloaded = KeyRing.load(tmp_path / "keys")
    assert reloaded.signer.kid == second
    assert reloaded.kids == [first, second]
    assert set(reloaded.jwks()) == {first, second}


def test_retire_deletes_the_key_and_refuses_the_active_one(tmp_path: Path) -> None:
    ring = KeyRing.load_or_create(tmp_path / "keys")
    first = ring.signer.kid
    ring.rotate()
    with pytest.raises(KeyStoreError, match="active"):
        ring.retire(ring.signer.kid)
    ring.retire(first)
    assert not (tmp_path / "keys" / f"{first}.pem").exists()
    assert first not in KeyRing.load(tmp_path / "keys").jwks()
    with pytest.raises(KeyStoreError):
        ring.retire(first)


def test_swapped_key_file_is_detected(tmp_path: Path) -> None:
    ring = KeyRing.load_or_create(tmp_path / "keys")
    SigningKey.generate().save(tmp_path / "keys" / f"{ring.signer.kid}.pem")
    with pytest.raises(KeyStoreError, match="another key"):
        KeyRing.load(tmp_path / "keys")


@pytest.mark.parametrize("content", ["not json", '{"keys": []}', '{"active": "x", "keys": []}'])
def test_corrupt_ring_index_is_refused(tmp_path: Path, content: str) -> None:
    (tmp_path / "keyring.json").write_text(content)
    with pytest.raises(KeyStoreError):
        KeyRing.load(tmp_path)


def test_empty_ring_has_no_signer() -> None:
    with pytest.raises(KeyStoreError, match="empty"):
        _ = KeyRing().signer


def test_trust_store_pins_per_issuer_and_round_trips(tmp_path: Path) -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    trust = TrustStore()
    trust.pin("coop-a", Jwks([a.public_key]))
    trust.pin("coop-b", Jwks([b.public_key]))
    assert trust.key_for("coop-a", a.kid) is not None
    assert trust.key_for("coop-a", b.kid) is None  # b's key is not coop-a's
    assert trust.key_for("coop-z", a.kid) is None
    trust.save(tmp_path / "trust.json")
    loaded = TrustStore.load(tmp_path / "trust.json")
    assert loaded.issuers == ["coop-a", "coop-b"]
    assert loaded.fingerprints("coop-b") == {b.kid: key_fingerprint(b.public_key)}
    loaded.unpin("coop-b")
    assert "coop-b" not in loaded
    assert TrustStore.load_or_empty(tmp_path / "missing.json").issuers == []


def test_trust_store_refuses_private_material(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    jwk = SigningKey.from_private_key(key).public_jwk()
    jwk["d"] = "c2VjcmV0"
    (tmp_path / "trust.json").write_text(json.dumps({"issuers": {"coop-a": {"keys": [jwk]}}}))
    with pytest.raises(KeyStoreError, match="private"):
        TrustStore.load(tmp_path / "trust.json")


def test_b64url_decode_accepts_unpadded() -> None:
    assert b64url_decode("YQ") == b"a"
