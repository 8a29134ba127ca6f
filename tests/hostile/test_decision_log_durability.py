"""A node process killed with SIGKILL the moment a peer has its grant (or its refusal) loses
neither decision: each entry was committed before the peer heard of it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from coopfed.node.federation.decide import GRANT_PATH
from coopfed.node.model import ConsentLevel, ConsentSettings
from coopfed.node.runtime import init_node, open_node
from coopfed.node.settings import load_settings
from coopfed.node.storage import SqliteStore
from coopfed.node.storage.governance_sqlite import SqliteGovernanceStore
from tests.federation_node.conftest import POLICIES, grantee_of, populate, running
from tests.federation_node.test_key_rotation import ASK

pytestmark = pytest.mark.integration


def _serve(config: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "coopfed.node.cli", "node", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    assert "serving on port" in line, line
    return proc, f"127.0.0.1:{line.split()[-1]}"


def _grant_entries(config: Path) -> list[dict]:
    store = SqliteStore(load_settings(config).path("node.db"))
    try:
        entries = [json.loads(e) for e in SqliteGovernanceStore(store).decision_log()]
    finally:
        store.close()
    return [e for e in entries if e["path"] == GRANT_PATH]


def test_sigkill_right_after_a_grant_and_a_refusal_loses_neither_decision(tmp_path: Path) -> None:
    config = init_node(tmp_path / "a", node_id="coop-a", name="a", listen="127.0.0.1:0", policies=POLICIES)
    with running(tmp_path / "b", "coop-b", POLICIES) as b:
        with open_node(load_settings(config)) as a:
            populate(a, [ConsentSettings(level=ConsentLevel.GREEN)] * 5, last_day_members=5)
            grantee_of(a).pin(asyncio.run(grantee_of(a).preview_join(b.public, plaintext=True)))
        proc, address = _serve(config)
        try:
            grantee_of(b.node).pin(asyncio.run(grantee_of(b.node).preview_join(address, plaintext=True)))
            held, _ = asyncio.run(grantee_of(b.node).obtain_grant("coop-a", ASK))
            elsewhere = dataclasses.replace(ASK, purpose="dpv:Marketing")  # an aim neither co-op has
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                asyncio.run(grantee_of(b.node).obtain_grant("coop-a", elsewhere))
            assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    entries = _grant_entries(config)
    assert [e["result"]["allowed"] for e in entries] == [True, False]
    assert entries[0]["input"]["request"]["purpose"] == ASK.purpose == held.scope.purpose
