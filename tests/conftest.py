"""Fixtures shared by test suites: the repository's policies and a real OPA server loaded with them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from coopfed.node.policy import PolicySet, load_policies
from coopfed.node.policy.embedded import EmbeddedEngine
from coopfed.node.policy.opa import OpaEngine
from coopfed.node.policy.sidecar import OpaSidecar

from . import pgserver

ROOT = Path(__file__).resolve().parent.parent
POLICY_DIR = ROOT / "policies"


def find_opa() -> str | None:
    """$COOPFED_OPA, else the Makefile's .tools/bin/opa, else opa on PATH."""
    candidates = [os.environ.get("COOPFED_OPA", ""), str(ROOT / ".tools" / "bin" / "opa")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("opa")


@pytest.fixture(scope="session", autouse=True)
def _postgres_stopped() -> Iterator[None]:
    """The throwaway PostgreSQL server (tests/pgserver.py), if a test started it, stops at the end."""
    yield
    pgserver.stop()


@pytest.fixture(scope="session")
def policy_dir() -> Path:
    return POLICY_DIR


@pytest.fixture(scope="session")
def policy_set() -> PolicySet:
    return load_policies(POLICY_DIR)


@pytest.fixture(scope="session")
def opa_binary() -> str:
    path = find_opa()
    if path is None:
        pytest.skip("OPA binary not found: run `make install` or set COOPFED_OPA")
    return path


@pytest.fixture(scope="session")
def opa_server(opa_binary: str) -> Iterator[OpaSidecar]:
    """`opa run --server` on a free loopback port, loaded from policies/ (tests excluded)."""
    with OpaSidecar(opa_binary, [POLICY_DIR]) as server:
        yield server


@pytest.fixture(scope="session")
def engines(opa_server: OpaSidecar, policy_set: PolicySet) -> Iterator[tuple[EmbeddedEngine, OpaEngine]]:
    """Both engines on the repository's policies: in-process regopy and the real OPA server."""
    embedded = EmbeddedEngine(policy_set)
    opa = OpaEngine(opa_server.url, policy_set, push=False, token=opa_server.token)
    yield embedded, opa
    embedded.close()
    opa.close()
