"""Signed bundles: what a node accepts, what it refuses, and M-of-N board signatures."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import jwt
import pytest

from coopfed.node.policy import archive, load_policies
from coopfed.node.policy import bundle as bundles
from coopfed.node.policy.archive import write_archive
from coopfed.node.policy.boardkeys import BoardKeySet, BoardSigningKey, public_pem
from coopfed.node.policy.bundle import (
    BundleError,
    BundleInfo,
    build_bundle,
    opa_file_hash,
    read_archive,
    sign_bundle,
    verify_bundle,
)


def _rewrite(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    """Change a bundle's files without re-signing it, as an attacker on the wire would."""
    files = read_archive(path)
    change(files)
    write_archive(path, files)


def _flip_one_byte(files: dict[str, bytes]) -> None:
    data = bytearray(files["consent/consent.rego"])
    at = data.index(b'"red"') + 1
    data[at] = ord("R")
    files["consent/consent.rego"] = bytes(data)


def test_a_signed_bundle_verifies_and_loads_the_policies(
    signed: BundleInfo, board_keys: BoardKeySet, policy_dir: Path, board: list[BoardSigningKey]
) -> None:
    verified = verify_bundle(signed.path, board_keys)
    assert verified.policies.revision == load_policies(policy_dir).revision == signed.revision
    assert verified.info.signers == (board[0].kid,)
    assert {"consent/consent.rego", "data.json", ".manifest"} <= set(verified.info.files)
    assert not any(name.endswith("_test.rego") for name in verified.info.files)
    assert "coopfed" in verified.info.roots
    assert "consent" in verified.info.roots


def test_one_changed_byte_is_refused(signed: BundleInfo, board_keys: BoardKeySet) -> None:
    _rewrite(signed.path, _flip_one_byte)
    with pytest.raises(BundleError, match=r"consent/consent.rego: digest mismatch"):
        verify_bundle(signed.path, board_keys)


def test_an_added_or_removed_file_is_refused(signed: BundleInfo, board_keys: BoardKeySet) -> None:
    _rewrite(signed.path, lambda f: f.update({"extra/extra.rego": b"package extra\n\nx := 1\n"}))
    with pytest.raises(BundleError, match=r"extra/extra\.rego: not included in the signature"):
        verify_bundle(signed.path, board_keys)
    _rewrite(signed.path, lambda f: [f.pop("extra/extra.rego"), f.pop("governance/scores.rego")])
    with pytest.raises(BundleError, match=r"governance/scores\.rego: signed but not in the bundle"):
        verify_bundle(signed.path, board_keys)


def test_data_layout_does_not_matter_but_its_values_do(signed: BundleInfo, board_keys: BoardKeySet) -> None:
    original = read_archive(signed.path)["data.json"]
    relaid = json.dumps(json.loads(original), indent=7).encode()
    _rewrite(signed.path, lambda f: f.update({"data.json": relaid}))
    assert verify_bundle(signed.path, board_keys).info.revision == signed.revision
    _rewrite(signed.path, lambda f: f.update({"data.json": relaid.replace(b'"k_min": 5', b'"k_min": 1')}))
    with pytest.raises(BundleError, match=r"data\.json: digest mismatch"):
        verify_bundle(signed.path, board_keys)


def test_an_unsigned_bundle_is_refused(signed: BundleInfo, board_keys: BoardKeySet) -> None:
    _rewrite(signed.path, lambda f: f.pop(bundles.SIGNATURES))
    with pytest.raises(BundleError, match="not signed"):
        verify_bundle(signed.path, board_keys)


def test_a_signature_by_a_key_outside_the_board_does_not_count(
    tmp_path: Path, policy_dir: Path, board_keys: BoardKeySet
) -> None:
    outsider = BoardSigningKey.generate()
    info = build_bundle(policy_dir, tmp_path / "b.tar.gz", [outsider])
    with pytest.raises(BundleError, match="valid signatures from 0 board key"):
        verify_bundle(info.path, board_keys)


def test_m_of_n_board_signatures(
    signed: BundleInfo, board: list[BoardSigningKey], board_keys: BoardKeySet
) -> None:
    with pytest.raises(BundleError, match="from 1 board key"):
        verify_bundle(signed.path, board_keys, threshold=2)
    sign_bundle(signed.path, board[0])  # the same member again still counts once
    with pytest.raises(BundleError, match="from 1 board key"):
        verify_bundle(signed.path, board_keys, threshold=2)
    sign_bundle(signed.path, board[2])
    verified = verify_bundle(signed.path, board_keys, threshold=2)
    assert set(verified.info.signers) == {board[0].kid, board[2].kid}
    with pytest.raises(BundleError, match="3 signatures required but the board key set holds 2"):
        verify_bundle(signed.path, BoardKeySet([board[0].public_key, board[1].public_key]), threshold=3)


def test_a_co_signature_after_tampering_does_not_launder_it(
    signed: BundleInfo, board: list[BoardSigningKey], board_keys: BoardKeySet
) -> None:
    """A member who co-signs changed content signs different hashes: the bundle is refused."""
    _rewrite(signed.path, _flip_one_byte)
    sign_bundle(signed.path, board[1])
    with pytest.raises(BundleError, match=f"differs from what board key {board[0].kid} signed"):
        verify_bundle(signed.path, board_keys)


def _forge(path: Path, header: dict, payload: dict, key: object, alg: str) -> None:
    token = jwt.encode(payload, key, algorithm=alg, headers=header)  # type: ignore[arg-type]
    _rewrite(path, lambda f: f.update({bundles.SIGNATURES: json.dumps({"signatures": [token]}).encode()}))


def _payload(path: Path, scope: str = bundles.DEFAULT_SCOPE) -> dict:
    files = {k: v for k, v in read_archive(path).items() if k != bundles.SIGNATURES}
    listed = [{"name": n, "hash": opa_file_hash(n, d), "algorithm": "SHA-256"} for n, d in files.items()]
    return {"files": listed, "scope": scope}


def test_algorithm_confusion_is_refused(
    signed: BundleInfo, board: list[BoardSigningKey], board_keys: BoardKeySet
) -> None:
    """HS256 keyed with the board's public key, as a verifier taking alg from the token would accept."""
    secret = public_pem(board[0].public_key)
    jwt_hmac = jwt.api_jws.PyJWS(algorithms=["HS256"])
    jwt_hmac._algorithms["HS256"].prepare_key = lambda key: key  # PyJWT refuses PEM as an HMAC key
    token = jwt_hmac.encode(
        json.dumps(_payload(signed.path)).encode(), secret, algorithm="HS256", headers={"kid": board[0].kid}
    )
    _rewrite(
        signed.path, lambda f: f.update({bundles.SIGNATURES: json.dumps({"signatures": [token]}).encode()})
    )
    with pytest.raises(BundleError, match="must be ES256"):
        verify_bundle(signed.path, board_keys)


def test_unexpected_headers_scope_and_weak_hashes_are_refused(
    signed: BundleInfo, board: list[BoardSigningKey], board_keys: BoardKeySet
) -> None:
    key = board[0]
    jwk_header = {"kid": key.kid, "jwk": {"kty": "EC"}}
    _forge(signed.path, jwk_header, _payload(signed.path), key.private_key, "ES256")
    with pytest.raises(BundleError, match="only alg, typ and kid"):
        verify_bundle(signed.path, board_keys)
    _forge(signed.path, {"kid": key.kid}, _payload(signed.path, scope="other"), key.private_key, "ES256")
    with pytest.raises(BundleError, match="scope 'other'"):
        verify_bundle(signed.path, board_keys)
    weak = _payload(signed.path)
    weak["files"][0] = {**weak["files"][0], "algorithm": "MD5"}
    _forge(signed.path, {"kid": key.kid}, weak, key.private_key, "ES256")
    with pytest.raises(BundleError, match="without a SHA-256 hash"):
        verify_bundle(signed.path, board_keys)


def test_a_manifest_revision_that_is_not_the_content_hash_is_refused(
    signed: BundleInfo, board: list[BoardSigningKey], board_keys: BoardKeySet
) -> None:
    def lie(files: dict[str, bytes]) -> None:
        manifest = json.loads(files[bundles.MANIFEST])
        files[bundles.MANIFEST] = json.dumps({**manifest, "revision": "v-approved-by-board"}).encode()
        files.pop(bundles.SIGNATURES)

    _rewrite(signed.path, lie)
    sign_bundle(signed.path, board[0])  # validly signed, but the revision names other content
    with pytest.raises(BundleError, match="revision is not the hash"):
        verify_bundle(signed.path, board_keys)


def test_content_outside_the_roots_is_refused(
    signed: BundleInfo, board: list[BoardSigningKey], board_keys: BoardKeySet
) -> None:
    def narrow(files: dict[str, bytes]) -> None:
        manifest = json.loads(files[bundles.MANIFEST])
        files[bundles.MANIFEST] = json.dumps({**manifest, "roots": ["coopfed"]}).encode()
        files.pop(bundles.SIGNATURES)

    _rewrite(signed.path, narrow)
    sign_bundle(signed.path, board[0])
    with pytest.raises(BundleError, match="outside its roots: ballots, consent, coop, datasets"):
        verify_bundle(signed.path, board_keys)


def _archive(path: Path, members: list[tarfile.TarInfo], data: bytes = b"package x\n") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 10) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, size if kind == tarfile.REGTYPE else 0
    if kind == tarfile.SYMTYPE:
        info.linkname = "/etc/passwd"
    return info


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([_member("../escape.rego")], "unsafe path"),
        ([_member("a/../../escape.rego")], "unsafe path"),
        ([_member("evil.sh")], "is not a policy"),
        ([_member("link.rego", tarfile.SYMTYPE)], "not a regular file"),
        ([_member("x.rego"), _member("/x.rego")], "appears twice"),
    ],
)
def test_hostile_archives_are_refused(
    tmp_path: Path, board_keys: BoardKeySet, members: list[tarfile.TarInfo], message: str
) -> None:
    path = _archive(tmp_path / "hostile.tar.gz", members)
    with pytest.raises(BundleError, match=message):
        verify_bundle(path, board_keys)


def test_oversize_and_non_gzip_bundles_are_refused(
    tmp_path: Path, board_keys: BoardKeySet, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "junk.tar.gz").write_bytes(b"not a gzip file")
    with pytest.raises(BundleError, match="cannot read bundle"):
        verify_bundle(tmp_path / "junk.tar.gz", board_keys)
    monkeypatch.setattr(archive, "MAX_BUNDLE_BYTES", 15)
    path = _archive(tmp_path / "big.tar.gz", [_member("a.rego"), _member("b.rego")])
    with pytest.raises(BundleError, match="larger than a policy bundle may be"):
        verify_bundle(path, board_keys)


def test_builds_are_reproducible(tmp_path: Path, policy_dir: Path, board: list[BoardSigningKey]) -> None:
    """The same policies, keys and time give the same bytes, so a co-signer can rebuild and compare."""
    a = build_bundle(policy_dir, tmp_path / "a.tar.gz", [board[1]], now=1_700_000_000, source="abc")
    b = build_bundle(policy_dir, tmp_path / "b.tar.gz", [board[1]], now=1_700_000_000, source="abc")
    unsigned = [{k: v for k, v in read_archive(x.path).items() if k != bundles.SIGNATURES} for x in (a, b)]
    assert unsigned[0] == unsigned[1]
    assert a.files == b.files


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ('{"b": 1, "a": [1.50, 2e3, -0]}', '{"a":[1.50,2e3,-0],"b":1}'),
        ('{"s": "<&>\\u2028\\b\\u0001é"}', '{"s":"<&>\\u2028\\b\\u0001é"}'),
        ('{"k": "\\ud800"}', '{"k":"\ufffd"}'),
    ],
)
def test_json_files_hash_over_opas_canonical_form(text: str, canonical: str) -> None:
    import hashlib

    expected = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert opa_file_hash("data.json", text.encode("utf-8")) == expected
    assert opa_file_hash("x.rego", text.encode()) == hashlib.sha256(text.encode()).hexdigest()


def test_a_bundle_stating_its_revision_as_before_rfc_8785_still_verifies(
    tmp_path: Path, policy_dir: Path, board: list[BoardSigningKey], board_keys: BoardKeySet
) -> None:
    """Revisions were sha256 of sorted-keys JSON; a bundle built then keeps its stated revision."""
    from coopfed.node.policy.loader import legacy_revision

    policies = load_policies(policy_dir)
    old = legacy_revision(policies)
    assert old != policies.revision  # policies/data.json holds floats such as 5.0
    built = build_bundle(policy_dir, tmp_path / "old.tar.gz", [board[0]])

    def restate(files: dict[str, bytes]) -> None:
        manifest = json.loads(files[archive.MANIFEST])
        files[archive.MANIFEST] = json.dumps({**manifest, "revision": old}, indent=2, sort_keys=True).encode()

    _rewrite(built.path, restate)
    sign_bundle(built.path, board[0])
    verified = verify_bundle(built.path, board_keys)
    assert (verified.info.revision, verified.policies.revision) == (old, policies.revision)
    _rewrite(
        built.path,
        lambda f: f.update({archive.MANIFEST: f[archive.MANIFEST].replace(old.encode(), b"0" * 64)}),
    )
    sign_bundle(built.path, board[0])
    with pytest.raises(BundleError, match="revision is not the hash"):
        verify_bundle(built.path, board_keys)
