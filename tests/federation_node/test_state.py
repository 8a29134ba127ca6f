"""The federation state files: shared by the node and the CLI, no update lost, changes seen at once."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

import pytest

from coopfed.federation.grants import Constraints, GrantScope
from coopfed.federation.revocation import RevocationList
from coopfed.node.errors import FailedPrecondition, NotFound
from coopfed.node.federation.state import FederationState, HeldGrant, PeerRecord

from .conftest import FORECASTING, YEAR_END, YEAR_START, sample_manifest


def _record(peer_id: str) -> PeerRecord:
    now = int(time.time())
    return PeerRecord(sample_manifest(peer_id), now, now, True, ("aligned",))


def _held(jti: str, issuer: str = "coop-b") -> HeldGrant:
    scope = GrantScope(
        datasets={"demand"},
        period_start=YEAR_START,
        period_end=YEAR_END,
        purpose=FORECASTING,
        flow="coop_to_coop",
    )
    return HeldGrant(
        "token-" + jti, jti, issuer, int(time.time()) + 600, scope, Constraints(5), int(time.time())
    )


def test_two_writers_lose_no_update(tmp_path: Path) -> None:
    """The node and the CLI are two processes with their own handles; flock serialises them."""
    node, cli = FederationState(tmp_path, "coop-a"), FederationState(tmp_path, "coop-a")
    records = {w: [_record(f"{w}-{i}") for i in range(8)] for w in ("node", "cli")}

    def pin_all(state: FederationState, which: str) -> None:
        for record in records[which]:
            state.pin(record)

    threads = [threading.Thread(target=pin_all, args=(s, w)) for s, w in ((node, "node"), (cli, "cli"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(node.peers()) == len(cli.peers()) == 16


def test_a_revocation_written_elsewhere_is_seen_on_the_next_check(tmp_path: Path) -> None:
    node, cli = FederationState(tmp_path, "coop-b"), FederationState(tmp_path, "coop-b")
    assert "g1" not in node.revocations()
    cli.revoke("g1", reason="misuse", expires_at=int(time.time()) + 600)
    assert node.revocations().reason_for("g1") == "misuse"
    assert node.revocations().sequence == 1


def test_pinned_keys_and_certificates_come_from_the_peers_file(tmp_path: Path) -> None:
    state = FederationState(tmp_path, "coop-a")
    b = _record("coop-b")
    state.pin(b)
    state.pin(_record("coop-a"))  # a record of this node itself is never trusted as a peer
    assert state.peer_trust().issuers == ["coop-b"]
    assert b.manifest.tls_certificate_pem in state.pinned_certificates()
    state.unpin("coop-b")
    assert state.peer_trust().issuers == []
    with pytest.raises(NotFound):
        state.unpin("coop-b")


def test_held_grants_are_secret_and_marked_when_their_issuer_revokes(tmp_path: Path) -> None:
    state = FederationState(tmp_path, "coop-a")
    state.hold(_held("g1"))
    state.hold(_held("g2"))
    state.hold(_held("g1", issuer="coop-c"))  # same jti from another issuer: replaced by jti
    assert stat.S_IMODE((tmp_path / "held-grants.json").stat().st_mode) == 0o600
    listed = RevocationList("coop-b")
    listed.revoke("g2", reason="board decision", expires_at=int(time.time()) + 600)
    assert state.store_peer_revocations("coop-b", listed) == ["g2"]
    assert state.held_grant("g2").revoked_reason == "board decision"
    assert state.held_grant("g1").revoked_reason is None
    assert state.store_peer_revocations("coop-b", listed) == []  # marked once
    assert state.peer_revocations("coop-b").revocations.sequence == 1


def test_a_corrupt_or_foreign_file_is_refused_not_ignored(tmp_path: Path) -> None:
    state = FederationState(tmp_path, "coop-a")
    state.create()
    (tmp_path / "peers.json").write_text('{"peers": {"coop-b": {"manifest": 7}}}')
    with pytest.raises(FailedPrecondition, match="corrupt"):
        state.peers()
    RevocationList("coop-z").save(tmp_path / "revocations.json")
    with pytest.raises(FailedPrecondition, match="belongs to coop-z"):
        state.revocations()


def test_grant_decisions_are_appended(tmp_path: Path) -> None:
    state = FederationState(tmp_path, "coop-b")
    state.record_decision({"peer": "coop-c", "allowed": False, "grant": None})
    state.record_decision({"peer": "coop-a", "allowed": True, "grant": {"jti": "g1", "expires_at": 1}})
    assert [g["jti"] for g in state.issued()] == ["g1"]
    with pytest.raises(NotFound):
        state.issued_grant("g2")
