"""A peer's manifest is checked field by field before anything in it is shown or pinned."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from coopfed.federation.keys import SigningKey, b64url
from coopfed.federation.tls import TlsIdentity
from coopfed.node.errors import InvalidArgument
from coopfed.node.federation.manifest import Manifest, manifest_from_proto
from coopfed.v1 import federation_pb2

from .conftest import sample_manifest

PEER = "coop-b.example.org"


def _valid() -> federation_pb2.CoopManifest:
    msg = sample_manifest(PEER).to_proto()
    msg.endpoints.peer = "[::1]:50052"
    return msg


def _ca_certificate(name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _private_jwks() -> str:
    key = SigningKey.generate()
    raw = key.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return json.dumps({"keys": [{**key.public_jwk(), "d": b64url(raw)}]})


def test_a_valid_manifest_round_trips() -> None:
    msg = _valid()
    manifest = manifest_from_proto(msg)
    assert manifest.to_proto() == msg
    assert Manifest.from_dict(json.loads(json.dumps(manifest.to_dict()))) == manifest
    assert set(manifest.policy_input()) == {
        "coop_id", "name", "aims", "governance", "policy_revision", "policy_hash", "datasets",
    }  # fmt: skip


CERT = "tls_certificate_pem"
GARBAGE_PEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
RSA_JWKS = '{"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]}'


def _put(name: str, value: Callable[[], str] | str) -> Callable[[federation_pb2.CoopManifest], None]:
    """Set a field (dotted for endpoints) to a value, or to what a function makes."""

    def spoil(msg: federation_pb2.CoopManifest) -> None:
        target, attr = (msg.endpoints, name.split(".")[1]) if "." in name else (msg, name)
        setattr(target, attr, value() if callable(value) else value)

    return spoil


def _other_node_certificate() -> str:
    return TlsIdentity.create("coop-c").cert_pem.decode()


HOSTILE: list[tuple[str, Callable[[federation_pb2.CoopManifest], None], str]] = [
    ("id with a slash", _put("coop_id", "coop/../b"), "coop_id"),
    ("upper-case id", _put("coop_id", "Coop-B"), "coop_id"),
    ("empty name", _put("name", ""), "name"),
    ("control characters", _put("name", "Bee\x1b[2J"), "name"),
    ("huge name", _put("name", "B" * 5000), "name"),
    ("too many aims", lambda m: m.aims.extend(["dpv:X"] * 100), "aims"),
    ("empty aim", lambda m: m.aims.append(""), "aims[3]"),
    ("policy hash not hex", _put("policy_hash", "zz" * 32), "policy_hash"),
    ("JWKS not JSON", _put("jwks_json", "{"), "jwks_json"),
    ("JWKS empty", _put("jwks_json", '{"keys": []}'), "jwks_json"),
    ("JWKS with a private key", _put("jwks_json", _private_jwks), "jwks_json"),
    ("JWKS of RSA", _put("jwks_json", RSA_JWKS), "jwks_json"),
    ("no certificate", _put(CERT, ""), CERT),
    ("garbage certificate", _put(CERT, GARBAGE_PEM), CERT),
    ("certificate of another node", _put(CERT, _other_node_certificate), CERT),
    ("a CA certificate", _put(CERT, lambda: _ca_certificate(PEER)), CERT),
    ("two certificates", lambda m: setattr(m, CERT, m.tls_certificate_pem * 2), CERT),
    ("peer endpoint without port", _put("endpoints.peer", "coop-b.example.org"), "endpoints.peer"),
    ("endpoint with a path", _put("endpoints.public", "evil.example/x:1"), "endpoints.public"),
]


@pytest.mark.parametrize(("name", "spoil", "field"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_manifests_are_refused(name: str, spoil: Callable, field: str) -> None:
    msg = _valid()
    spoil(msg)
    with pytest.raises(InvalidArgument) as refused:
        manifest_from_proto(msg)
    assert refused.value.field == field
    assert refused.value.code == "manifest.invalid"


def test_a_manifest_must_be_the_peer_it_claims() -> None:
    with pytest.raises(InvalidArgument, match="not the peer pinned as 'coop-x'"):
        manifest_from_proto(_valid(), expect_id="coop-x")


def test_the_manifest_command_prints_json_with_the_fingerprints_peers_compare(tmp_path, capsys) -> None:
    from coopfed.node.cli import main
    from coopfed.node.runtime import init_node

    config = init_node(tmp_path / "c", node_id="coop-c", name="C", listen="127.0.0.1:0")
    assert main(["federation", "manifest", "--config", str(config)]) == 0
    words = capsys.readouterr().out
    assert main(["federation", "manifest", "--config", str(config), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["coop_id"] == "coop-c"
    assert f"TLS certificate SHA-256: {shown['tls_fingerprint']}" in words
    assert shown["key_fingerprints"]
    assert all(fp in words for fp in shown["key_fingerprints"].values())
