"""The committed coopfed.v1 stubs and descriptor set are exactly what `make proto` generates from
the .proto files, and the descriptor set carries the comments generic tools show."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

PROTO = Path(__file__).resolve().parents[1] / "proto"
PROTOSET = PROTO / "coopfed.protoset"


def _generated(root: Path) -> list[str]:
    return sorted(
        [str(p.relative_to(root)) for p in (root / "coopfed" / "v1").glob("*_pb2*")] + ["coopfed.protoset"]
    )


def test_generated_stubs_are_up_to_date(tmp_path):
    shutil.copytree(
        PROTO / "coopfed" / "v1", tmp_path / "coopfed" / "v1", ignore=shutil.ignore_patterns("*_pb2*")
    )
    protos = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "coopfed" / "v1").glob("*.proto"))
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            ".",
            "--python_out=.",
            "--grpc_python_out=.",
            f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
            "--mypy_out=.",
            "--mypy_grpc_out=.",
            "--include_imports",
            "--include_source_info",
            "--descriptor_set_out=coopfed.protoset",
            *protos,
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    generated, committed = _generated(tmp_path), _generated(PROTO)
    assert generated == committed, "generated files differ from the .proto files: run `make proto`"
    assert PROTOSET.exists(), "no descriptor set: run `make proto`"
    _, mismatch, errors = filecmp.cmpfiles(PROTO, tmp_path, generated, shallow=False)
    assert mismatch + errors == [], "stale generated files: run `make proto`"


def test_the_descriptor_set_carries_the_proto_comments():
    files = descriptor_pb2.FileDescriptorSet.FromString(PROTOSET.read_bytes()).file
    by_name = {f.name: f for f in files}
    assert {"coopfed/v1/member.proto", "google/protobuf/timestamp.proto"} <= set(by_name)
    member = by_name["coopfed/v1/member.proto"]
    comments = [loc.leading_comments for loc in member.source_code_info.location]
    # a field's comment (RegisterResponse.token), word for word as in member.proto
    assert any("Bearer token (EdDSA-signed JWT) for later calls. Keep it secret." in c for c in comments)
    # and a method's
    assert any("Apply to join the co-op." in c for c in comments)
