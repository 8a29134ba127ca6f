"""The one atomic write: whole files or none, the mode asked for, and create-only when exclusive."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from coopfed.federation.atomic import replacing, write_atomic


def test_a_write_replaces_the_file_whole_with_the_mode_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_atomic(path, b"old", 0o644)
    write_atomic(path, b"new", 0o600)
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_atomic(path, b"old")

    def crash_while_writing() -> None:
        with replacing(path) as fh:
            fh.write(b"half")
            raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError):
        crash_while_writing()
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_an_exclusive_write_never_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "meter.key"
    write_atomic(path, b"first", 0o600, exclusive=True)
    with pytest.raises(FileExistsError):
        write_atomic(path, b"second", 0o600, exclusive=True)
    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["meter.key"]
