"""`coopfed policy bundle` numbers bundles: one more than the bundle it replaces, or --serial."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coopfed.node.cli import main
from coopfed.node.policy.archive import MANIFEST, read_archive
from coopfed.node.policy.boardkeys import BoardKeySet, BoardSigningKey
from coopfed.node.policy.bundle import BundleError, build_bundle, verify_bundle


def _order(bundle: Path) -> tuple[int, bool]:
    meta = json.loads(read_archive(bundle)[MANIFEST])["metadata"]["coopfed"]
    return meta["serial"], meta["rollback"]


def test_serials_count_up_from_the_bundle_replaced(tmp_path: Path, policy_dir: Path) -> None:
    assert main(["policy", "keygen", "--out", str(tmp_path / "alice")]) == 0
    out = tmp_path / "bundle.tar.gz"
    build = ["policy", "bundle", "--policies", str(policy_dir), "--key", str(tmp_path / "alice.key")]
    build += ["--out", str(out)]
    assert main(build) == 0
    assert _order(out) == (1, False)
    assert main(build) == 0
    assert _order(out) == (2, False)
    assert main([*build, "--serial", "9", "--rollback"]) == 0
    assert _order(out) == (9, True)


def test_a_bundle_without_a_serial_is_refused(tmp_path: Path, policy_dir: Path) -> None:
    key = BoardSigningKey.generate()
    with pytest.raises(BundleError, match="whole number"):
        build_bundle(policy_dir, tmp_path / "b.tar.gz", [key], serial=0)
    info = build_bundle(policy_dir, tmp_path / "b.tar.gz", [key], serial=3)
    verified = verify_bundle(info.path, BoardKeySet([key.public_key]))
    assert (verified.info.serial, verified.info.rollback) == (3, False)
    assert verified.info.issued_at > 0
