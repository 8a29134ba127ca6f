"""The OPA engine against real servers: pushing a policy set, failures, and the sidecar's life."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from coopfed.node.policy import PolicyError, PolicySet, PolicyUnavailable, make_engine, make_policy_set
from coopfed.node.policy import sidecar as sidecar_module
from coopfed.node.policy.consent import CONSENT_PATH, decide_consent
from coopfed.node.policy.opa import OpaEngine
from coopfed.node.policy.opa_http import OpaHttp
from coopfed.node.policy.sidecar import OpaSidecar

from .cases import question

pytestmark = pytest.mark.integration

GREEN_OPEN = question("green", flow="open_data", purpose="dpv:PublicBenefit")


@pytest.fixture
def bare_opa(opa_binary: str) -> Iterator[OpaSidecar]:
    """A server of its own, started empty, for tests that change or stop it."""
    with OpaSidecar(opa_binary) as server:
        yield server


def _opa_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.name() == "opa"]


def test_the_shared_server_holds_the_policies_but_not_their_tests(opa_server: OpaSidecar) -> None:
    policies = requests.get(f"{opa_server.url}/v1/policies", headers=_auth(opa_server), timeout=5).json()[
        "result"
    ]
    ids = [p["id"] for p in policies]
    assert any(i.endswith("consent/consent.rego") for i in ids)
    assert not any(i.endswith("_test.rego") for i in ids)


def test_push_loads_an_empty_server(bare_opa: OpaSidecar, policy_set: PolicySet) -> None:
    engine = OpaEngine(bare_opa.url, policy_set, token=bare_opa.token)
    try:
        decision = decide_consent(engine, GREEN_OPEN["profile"], "demand", "open_data", "dpv:PublicBenefit")
        assert decision.allowed
        assert decision.revision == policy_set.revision
    finally:
        engine.close()


def test_make_engine_pushes_to_a_configured_server(bare_opa: OpaSidecar, policy_set: PolicySet) -> None:
    engine = make_engine("opa", policy_set, opa_url=bare_opa.url, opa_token=bare_opa.token)
    try:
        assert engine.evaluate(CONSENT_PATH, GREEN_OPEN)["allowed"] is True
    finally:
        engine.close()
    assert bare_opa._is_ours()  # closing an engine leaves a server it does not own running


def test_push_replaces_data_and_prunes_old_modules(bare_opa: OpaSidecar, policy_set: PolicySet) -> None:
    engine = OpaEngine(bare_opa.url, policy_set, token=bare_opa.token)
    try:
        extra = make_policy_set(
            {**policy_set.modules, "extra.rego": "package extra\n\nx := 1\n"}, policy_set.data
        )
        engine.push(extra)
        assert engine.evaluate("extra/x", {}) == 1
        narrower = {**policy_set.data, "coop": {**policy_set.data["coop"], "aims": ["dpv:ServiceProvision"]}}
        engine.push(make_policy_set(dict(policy_set.modules), narrower))
        assert engine.evaluate("extra/x", {}) is None  # the module is gone
        assert engine.evaluate(CONSENT_PATH, GREEN_OPEN)["allowed"] is False  # the new aims apply
        assert engine.revision != policy_set.revision
    finally:
        engine.close()


def test_a_policy_that_does_not_compile_is_a_policy_error(
    bare_opa: OpaSidecar, policy_set: PolicySet
) -> None:
    broken = make_policy_set({"broken.rego": "package broken\n\nx := if {"}, {})
    engine = OpaEngine(bare_opa.url, policy_set, token=bare_opa.token)
    try:
        with pytest.raises(PolicyError, match="OPA refused"):
            engine.push(broken)
    finally:
        engine.close()


def test_an_evaluation_error_is_a_policy_error(bare_opa: OpaSidecar) -> None:
    conflict = make_policy_set({"c.rego": "package c\n\nx := input.a\n\nx := input.b\n"}, {})
    engine = OpaEngine(bare_opa.url, conflict, token=bare_opa.token)
    try:
        assert engine.evaluate("c/x", {"a": 1, "b": 1}) == 1
        with pytest.raises(PolicyError, match="500"):
            engine.evaluate("c/x", {"a": 1, "b": 2})  # complete rule with two values
    finally:
        engine.close()


def test_a_stopped_server_is_unavailable(bare_opa: OpaSidecar, policy_set: PolicySet) -> None:
    engine = OpaEngine(bare_opa.url, policy_set, token=bare_opa.token)
    try:
        assert engine.evaluate(CONSENT_PATH, GREEN_OPEN)["allowed"] is True
        bare_opa.stop()
        with pytest.raises(PolicyUnavailable):
            engine.evaluate(CONSENT_PATH, GREEN_OPEN)
    finally:
        engine.close()


def test_an_unreachable_server_is_unavailable_from_the_start(policy_set: PolicySet) -> None:
    with socket.socket() as sock:  # a port that is bound but never accepts: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(PolicyUnavailable):
            OpaEngine(f"http://127.0.0.1:{port}", policy_set)


@pytest.mark.parametrize("url", ["", "127.0.0.1:8181", "ftp://127.0.0.1:8181", "http://127.0.0.1:port"])
def test_urls_that_are_not_opa_servers_are_refused(policy_set: PolicySet, url: str) -> None:
    with pytest.raises(PolicyError, match="not an OPA server URL"):
        OpaEngine(url, policy_set)


@pytest.mark.parametrize("path", ["", "a//b", "../v1/policies", "a/b?x=1", "data.a.b", "a/b c"])
def test_paths_that_are_not_documents_are_refused(
    opa_server: OpaSidecar, policy_set: PolicySet, path: str
) -> None:
    engine = OpaEngine(opa_server.url, policy_set, push=False, token=opa_server.token)
    try:
        with pytest.raises(PolicyError, match="not a policy path"):
            engine.evaluate(path, {})
    finally:
        engine.close()


def test_sidecar_starts_and_stops_leaving_no_process(opa_binary: str, policy_set: PolicySet) -> None:
    before = {p.pid for p in _opa_children()}
    engine = make_engine("opa", policy_set, opa_binary=opa_binary)
    pid = engine._sidecar.pid
    assert pid in {p.pid for p in _opa_children()} - before
    assert engine.evaluate(CONSENT_PATH, GREEN_OPEN)["allowed"] is True
    engine.close()
    assert not psutil.pid_exists(pid)
    assert {p.pid for p in _opa_children()} == before


def test_sidecar_as_a_context_manager(opa_binary: str, policy_dir) -> None:
    with OpaSidecar(opa_binary, [policy_dir]) as server:
        pid = server.pid
        assert requests.get(f"{server.url}/health", headers=_auth(server), timeout=5).status_code == 200
    assert not psutil.pid_exists(pid)
    server.stop()  # stopping twice is harmless


def test_sidecar_never_mistakes_another_server_for_its_own(
    opa_binary: str, bare_opa: OpaSidecar, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offered a port where another OPA already answers /health, it retries on a new port."""
    ports = iter([bare_opa.port])
    real = sidecar_module._free_port
    monkeypatch.setattr(sidecar_module, "_free_port", lambda host: next(ports, None) or real(host))
    with OpaSidecar(opa_binary) as server:
        assert server.port != bare_opa.port
        assert server._is_ours()
    assert bare_opa._is_ours()  # the other server was left alone


def test_sidecar_that_cannot_start_says_why(opa_binary: str, tmp_path) -> None:
    with pytest.raises(PolicyUnavailable, match="no executable OPA binary"):
        OpaSidecar(tmp_path / "opa").start()
    bad = tmp_path / "bad.rego"
    bad.write_text("package bad\n\nx := if {\n")
    server = OpaSidecar(opa_binary, [bad])
    with pytest.raises(PolicyUnavailable, match="did not become healthy"):
        server.start()
    assert server.pid is None


@pytest.mark.parametrize("value", [{"x": float("nan")}, {"x": object()}, {"x": "\ud800"}])
def test_input_that_is_not_json_is_a_policy_error(
    opa_server: OpaSidecar, policy_set: PolicySet, value: object
) -> None:
    engine = OpaEngine(opa_server.url, policy_set, push=False, token=opa_server.token)
    try:
        with pytest.raises(PolicyError, match="not valid JSON"):
            engine.evaluate(CONSENT_PATH, value)
    finally:
        engine.close()


def _auth(server: OpaSidecar) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


def test_an_https_server_is_verified_against_the_configured_ca_file(
    opa_binary: str, policy_set: PolicySet, tmp_path: Path
) -> None:
    """opa_ca_file: the one OPA client verifies the server's certificate, and refuses one it cannot."""
    _self_signed_ca(tmp_path / "opa.key", tmp_path / "opa.crt")
    port = sidecar_module._free_port("127.0.0.1")
    url = f"https://127.0.0.1:{port}"
    args = ["run", "--server", "--addr", f"127.0.0.1:{port}", "--disable-telemetry"]
    tls = ["--tls-cert-file", str(tmp_path / "opa.crt"), "--tls-private-key-file", str(tmp_path / "opa.key")]
    server = subprocess.Popen([opa_binary, *args, *tls], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        probe = OpaHttp(url, ca_file=str(tmp_path / "opa.crt"))
        deadline = time.monotonic() + 15
        while probe.probe("health") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        engine = OpaEngine(url, policy_set, ca_file=str(tmp_path / "opa.crt"))
        try:
            assert engine.evaluate(CONSENT_PATH, GREEN_OPEN)["allowed"] is True
        finally:
            engine.close()
        with pytest.raises(PolicyUnavailable):
            OpaEngine(url, policy_set)  # the system's CAs do not vouch for this certificate
        with pytest.raises(PolicyError, match="not https"):
            OpaEngine(f"http://127.0.0.1:{port}", policy_set, ca_file=str(tmp_path / "opa.crt"))
    finally:
        server.terminate()
        server.wait(10)


def _self_signed_ca(key_path: Path, cert_path: Path) -> None:
    """A P-256 key and a self-signed CA certificate for 127.0.0.1: a server's own trust anchor."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opa")])
    now = datetime.datetime.now(datetime.UTC)
    loopback = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(loopback, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    key_path.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(cert.public_bytes(pem))
