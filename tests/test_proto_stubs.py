"""The committed coopfed.v1 stubs are exactly what `make proto` generates from the .proto files."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

PROTO = Path(__file__).resolve().parents[1] / "proto"


def test_generated_stubs_are_up_to_date(tmp_path):
    shutil.copytree(
        PROTO / "coopfed" / "v1", tmp_path / "coopfed" / "v1", ignore=shutil.ignore_patterns("*_pb2*")
    )
    protos = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "coopfed" / "v1").glob("*.proto"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            ".",
            "--python_out=.",
            "--grpc_python_out=.",
            f"--plugin=protoc-gen-mypy={Path(sys.executable).parent / 'protoc-gen-mypy'}",
            "--mypy_out=.",
            *protos,
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    generated = sorted(p.name for p in (tmp_path / "coopfed" / "v1").glob("*_pb2*"))
    committed = sorted(p.name for p in (PROTO / "coopfed" / "v1").glob("*_pb2*"))
    assert generated == committed, "stub files differ from the .proto files: run `make proto`"
    _, mismatch, errors = filecmp.cmpfiles(
        PROTO / "coopfed" / "v1", tmp_path / "coopfed" / "v1", generated, shallow=False
    )
    assert mismatch + errors == [], "stale stubs: run `make proto`"
