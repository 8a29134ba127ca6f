"""Real OPA verifies our signed bundles: `opa run --server --bundle --verification-key ...`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from coopfed.node.policy import PolicyUnavailable
from coopfed.node.policy import bundle as bundles
from coopfed.node.policy.archive import write_archive
from coopfed.node.policy.boardkeys import BoardSigningKey, public_pem
from coopfed.node.policy.bundle import BundleInfo, build_bundle, read_archive
from coopfed.node.policy.sidecar import OpaSidecar

pytestmark = pytest.mark.integration

QUESTION = {
    "profile": {"level": "green", "persona": "", "choices": {}},
    "dataset": "demand",
    "flow": "open_data",
    "purpose": "dpv:PublicBenefit",
}


def _opa_with_bundle(opa_binary: str, bundle: Path, key: BoardSigningKey, tmp_path: Path) -> OpaSidecar:
    pem = tmp_path / f"{key.kid}.pem"
    pem.write_bytes(public_pem(key.public_key))
    flags = ["--bundle", "--verification-key", str(pem), "--verification-key-id", key.kid]
    flags += ["--signing-alg", "ES256", "--scope", bundles.DEFAULT_SCOPE]
    # With --bundle every path is a signed bundle, so no authz policy can ride along: this
    # server answers anyone, as OPA run on files does (the node's sidecars never do).
    return OpaSidecar(opa_binary, [bundle], args=flags, authenticate=False)


def test_opa_loads_our_signed_bundle(
    opa_binary: str, signed: BundleInfo, board: list[BoardSigningKey], tmp_path: Path
) -> None:
    with _opa_with_bundle(opa_binary, signed.path, board[0], tmp_path) as opa:
        answer = requests.post(
            f"{opa.url}/v1/data/coopfed/consent/decision", json={"input": QUESTION}, timeout=10
        )
        assert answer.json()["result"]["allowed"] is True
        manifest = requests.get(f"{opa.url}/v1/data/system/bundles", timeout=10).json()
        assert signed.revision in json.dumps(manifest)


def test_opa_refuses_it_after_one_byte_of_a_policy_changes(
    opa_binary: str, signed: BundleInfo, board: list[BoardSigningKey], tmp_path: Path
) -> None:
    files = read_archive(signed.path)
    rego = bytearray(files["consent/consent.rego"])
    rego[rego.index(b'"red"') + 1] = ord("R")
    files["consent/consent.rego"] = bytes(rego)
    write_archive(signed.path, files)
    with pytest.raises(PolicyUnavailable, match=r"consent/consent.rego: digest mismatch"):
        _opa_with_bundle(opa_binary, signed.path, board[0], tmp_path).start()


def test_opa_refuses_a_bundle_signed_by_another_key(
    opa_binary: str, signed: BundleInfo, board: list[BoardSigningKey], tmp_path: Path
) -> None:
    impostor = BoardSigningKey(board[1].private_key, board[0].kid)  # claims the trusted kid
    files = read_archive(signed.path)
    files.pop(bundles.SIGNATURES)
    hashes = {name: bundles.opa_file_hash(name, data) for name, data in files.items()}
    files[bundles.SIGNATURES] = bundles._signatures_file([bundles.sign_files(hashes, impostor)])
    write_archive(signed.path, files)
    with pytest.raises(PolicyUnavailable, match="failed to verify JWT signature"):
        _opa_with_bundle(opa_binary, signed.path, board[0], tmp_path).start()


def test_opa_and_we_hash_awkward_json_alike(
    opa_binary: str, policies: Path, board: list[BoardSigningKey], tmp_path: Path
) -> None:
    """Numbers as written, escapes, HTML characters, line separators and non-ASCII in data.json."""
    data = json.loads((policies / "data.json").read_text())
    data["zz_awkward"] = {"n": [1.50, 2e3, -0.0, 10000000000000000000001], "s": '<&>\u2028\b\x01é\u00a0"\\/'}
    text = json.dumps(data, ensure_ascii=False, indent=1).replace("2000.0", "2e3").replace("1.5,", "1.50,")
    (policies / "data.json").write_text(text, encoding="utf-8")
    info = build_bundle(policies, tmp_path / "awkward.tar.gz", [board[0]])
    with _opa_with_bundle(opa_binary, info.path, board[0], tmp_path) as opa:
        stored = requests.get(f"{opa.url}/v1/data/zz_awkward", timeout=10).json()["result"]
    assert stored["s"] == data["zz_awkward"]["s"]
