"""An insider with the database (and, for some attacks, the node's own key) rewrites coop-a's
decision log with sqlite3: cuts its tail, re-chains it after an edit, appends forged entries,
or signs a head with another key. `coopfed audit verify` names each, from the head the node
signed and the heads its peer coop-b keeps as witness; the node refuses to log onto a head it
did not sign."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from coopfed.federation.keys import KeyRing
from coopfed.node.decisionlog import entry_hash
from coopfed.node.loghead import HeadSigner, sign_head
from coopfed.node.masking import canonical
from coopfed.node.model import ConsentLevel, ConsentSettings
from coopfed.node.runtime import init_node
from coopfed.node.storage import SqliteStore
from coopfed.node.storage.governance import LogTampered
from coopfed.node.storage.governance_sqlite import SqliteGovernanceStore
from tests.federation_node.conftest import POLICIES, RunningNode, grantee_of, populate, refresher, running
from tests.federation_node.test_key_rotation import ASK

pytestmark = pytest.mark.integration
GRANTS = 4


def _join(who: RunningNode, peer: RunningNode) -> None:
    grantee_of(who.node).pin(asyncio.run(grantee_of(who.node).preview_join(peer.public, plaintext=True)))


@pytest.fixture(scope="module")
def witnessed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """coop-a's folder after it granted coop-b four times and both refreshed (so coop-b keeps
    coop-a's head); coop-a is stopped, coop-b keeps running to answer audits."""
    root = tmp_path_factory.mktemp("witness")
    with running(root / "b", "coop-b", POLICIES) as b:
        with running(root / "a", "coop-a", POLICIES) as a:
            populate(a.node, [ConsentSettings(level=ConsentLevel.GREEN)] * 5, last_day_members=5)
            _join(a, b)
            _join(b, a)
            for _ in range(GRANTS):
                asyncio.run(grantee_of(b.node).obtain_grant("coop-a", ASK))
            for node in (a, b):
                assert asyncio.run(refresher(node.node).refresh_all()).failures == {}
        yield root / "a"


@pytest.fixture
def insider(witnessed: Path, tmp_path: Path) -> Path:
    """A copy of coop-a (same identity, same database) for one insider to edit."""
    return shutil.copytree(witnessed, tmp_path / "a")


def _audit(folder: Path, *args: str) -> tuple[int, str]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "coopfed.node.cli",
            "audit",
            "verify",
            "--config",
            str(folder / "coopfed.toml"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, " ".join((done.stdout + done.stderr).split())


def _db(folder: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(folder / "node.db", isolation_level=None)
    conn.executescript("DROP TRIGGER decision_log_no_update; DROP TRIGGER decision_log_no_delete;")
    return conn


def _entries(conn: sqlite3.Connection) -> list[dict]:
    return [json.loads(e) for (e,) in conn.execute("SELECT entry_json FROM decision_log ORDER BY position")]


def _set_head(conn: sqlite3.Connection, entry: dict, signed: str | None) -> None:
    conn.execute(
        "UPDATE decision_log_head SET seq = ?, hash = ?, signed = ?", (entry["seq"], entry["hash"], signed)
    )


def _own_key_signs(folder: Path, entry: dict) -> str:
    """The insider also holds the node's key: the head looks genuinely signed."""
    return sign_head(KeyRing.load(folder / "keys"), "coop-a", entry["seq"], entry["hash"])


def test_the_untouched_log_verifies_against_its_signed_head_and_the_witness(insider: Path) -> None:
    rc, out = _audit(insider)
    assert rc == 0, out
    assert "decision log verified" in out
    assert "coop-b (1 heads)" in out


def test_a_fresh_node_with_an_empty_log_verifies(tmp_path: Path) -> None:
    init_node(tmp_path, node_id="coop-new", name="new", listen="127.0.0.1:0", policies=POLICIES)
    rc, out = _audit(tmp_path)
    assert rc == 0, out
    assert "decision log verified: 0 entries" in out


def test_a_cut_tail_re_signed_with_the_nodes_own_key_is_named_by_the_witness(insider: Path) -> None:
    with contextlib.closing(_db(insider)) as conn:
        entries = _entries(conn)
        keep = entries[:-2]
        conn.execute("DELETE FROM decision_log WHERE position > ?", (len(keep),))
        _set_head(conn, keep[-1], _own_key_signs(insider, keep[-1]))
    rc, out = _audit(insider)
    assert rc == 1, out
    assert f"truncated: entries {len(keep) + 1} to {len(entries)} were cut off the end of the log" in out
    assert "the head coop-b keeps as witness" in out


def test_a_log_re_chained_after_an_edit_differs_from_the_witness(insider: Path) -> None:
    with contextlib.closing(_db(insider)) as conn:
        entries = _entries(conn)
        edited = 2
        entries[edited - 1]["result"] = {"allowed": False, "reasons": ["never asked"]}
        for i in range(edited - 1, len(entries)):  # every hash from the edited entry on, recomputed
            if i:
                entries[i]["prev_hash"] = entries[i - 1]["hash"]
            entries[i]["hash"] = entry_hash(entries[i])
            conn.execute(
                "UPDATE decision_log SET entry_json = ? WHERE position = ?",
                (canonical(entries[i]).decode(), i + 1),
            )
        _set_head(conn, entries[-1], _own_key_signs(insider, entries[-1]))
    rc, out = _audit(insider)
    assert rc == 1, out
    assert f"entry {len(entries)} (decision" in out
    assert "differs from the head coop-b keeps as witness: the log was rewritten" in out


def _forge(conn: sqlite3.Connection, count: int) -> list[dict]:
    entries = _entries(conn)
    forged = []
    for n in range(count):
        last = (forged or entries)[-1]
        entry = {**last, "decision_id": f"forged-{n}", "seq": last["seq"] + 1, "prev_hash": last["hash"]}
        entry["hash"] = entry_hash(entry)
        conn.execute(
            "INSERT INTO decision_log (decision_id, entry_json) VALUES (?, ?)",
            (entry["decision_id"], canonical(entry).decode()),
        )
        forged.append(entry)
    return entries + forged


def test_forged_appended_entries_come_after_the_last_signed_head(insider: Path) -> None:
    with contextlib.closing(_db(insider)) as conn:
        genuine = len(_entries(conn))
        entries = _forge(conn, 2)
        conn.execute(
            "UPDATE decision_log_head SET seq = ?, hash = ?", (entries[-1]["seq"], entries[-1]["hash"])
        )
    rc, out = _audit(insider)
    assert rc == 1, out
    assert f"forged: entries {genuine + 1} to {genuine + 2} come after the last head this node signed" in out


def test_the_node_refuses_to_log_onto_forged_entries(insider: Path) -> None:
    with contextlib.closing(_db(insider)) as conn:
        entries = _forge(conn, 1)
        conn.execute(
            "UPDATE decision_log_head SET seq = ?, hash = ?", (entries[-1]["seq"], entries[-1]["hash"])
        )
    store = SqliteStore(insider / "node.db")
    try:
        ring = KeyRing.load(insider / "keys")
        gov = SqliteGovernanceStore(store, HeadSigner("coop-a", lambda: ring))
        with pytest.raises(LogTampered, match="not one this node signed"):
            gov.append_decisions([{**entries[0], "decision_id": "next"}])
        assert gov.decision_log_head()[0] == entries[-1]["seq"]  # nothing was chained onto them
    finally:
        store.close()


def test_a_head_signed_with_another_key_is_named(insider: Path) -> None:
    with contextlib.closing(_db(insider)) as conn:
        entries = _entries(conn)
        conn.execute("DELETE FROM decision_log WHERE position = ?", (len(entries),))
        other = KeyRing()
        other.rotate()
        _set_head(conn, entries[-2], sign_head(other, "coop-a", entries[-2]["seq"], entries[-2]["hash"]))
    rc, out = _audit(insider, "--offline")
    assert rc == 1, out
    assert "unsigned: the log's head is not signed by this node's key" in out
