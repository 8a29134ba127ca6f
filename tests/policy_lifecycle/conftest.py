"""Fixtures: board keys, a copy of the repository's policies, and signed bundles of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from coopfed.node.policy.boardkeys import BoardKeySet, BoardSigningKey
from coopfed.node.policy.bundle import BundleInfo, build_bundle


@pytest.fixture(scope="session")
def board() -> list[BoardSigningKey]:
    """Three board members' signing keys."""
    return [BoardSigningKey.generate() for _ in range(3)]


@pytest.fixture(scope="session")
def board_keys(board: list[BoardSigningKey]) -> BoardKeySet:
    return BoardKeySet(k.public_key for k in board)


@pytest.fixture
def policies(tmp_path: Path, policy_dir: Path) -> Path:
    """A copy of policies/ that a test may change."""
    return Path(shutil.copytree(policy_dir, tmp_path / "policies"))


@pytest.fixture
def signed(tmp_path: Path, policy_dir: Path, board: list[BoardSigningKey]) -> BundleInfo:
    """policies/ as a bundle signed by the first board member."""
    return build_bundle(policy_dir, tmp_path / "bundle.tar.gz", [board[0]])
