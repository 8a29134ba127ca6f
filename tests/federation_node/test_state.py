"""The federation state in the node's database: shared by the node and the CLI, no update lost,
changes seen at once; an earlier release's state files imported once, whole or not at all."""

from __future__ import annotations

import contextlib
import json
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coopfed.federation.grants import Constraints, GrantScope
from coopfed.federation.revocation import RevocationList
from coopfed.node.errors import FailedPrecondition, NotFound
from coopfed.node.federation.state import (
    LEGACY_FILES,
    FederationState,
    HeldGrant,
    PeerRecord,
    import_files,
)
from coopfed.node.runtime import init_node, open_node
from coopfed.node.settings import load_settings
from coopfed.node.storage import SqliteStore
from coopfed.node.storage.federation_sqlite import SqlFederationStore

from .conftest import FORECASTING, POLICIES, YEAR_END, YEAR_START, sample_manifest


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


@contextlib.contextmanager
def _opened(folder: Path, node_id: str) -> Iterator[FederationState]:
    """The federation state over its own connections to the database, as each process has."""
    with SqliteStore(folder / "node.db", synchronous="NORMAL") as store:
        yield FederationState(SqlFederationStore(store), node_id)


@pytest.fixture
def two(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[FederationState, FederationState]]:
    node_id = getattr(request, "param", "coop-a")
    with _opened(tmp_path, node_id) as node, _opened(tmp_path, node_id) as cli:
        yield node, cli


def test_two_writers_lose_no_update(two: tuple[FederationState, FederationState]) -> None:
    """The node and the CLI are two processes with their own connections; the database serialises them."""
    node, cli = two
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


@pytest.mark.parametrize("two", ["coop-b"], indirect=True)
def test_a_revocation_written_elsewhere_is_seen_on_the_next_check(
    two: tuple[FederationState, FederationState],
) -> None:
    node, cli = two
    assert "g1" not in node.revocations()
    cli.revoke("g1", reason="misuse", expires_at=int(time.time()) + 600)
    assert node.revocations().reason_for("g1") == "misuse"
    assert node.revocations().sequence == 1


def test_pinned_keys_and_certificates_come_from_the_pinned_peers(
    two: tuple[FederationState, FederationState],
) -> None:
    state, cli = two
    b = _record("coop-b")
    state.pin(b)
    state.pin(_record("coop-a"))  # a record of this node itself is never trusted as a peer
    assert state.peer_trust().issuers == ["coop-b"]
    assert b.manifest.tls_certificate_pem in state.pinned_certificates()
    cli.unpin("coop-b")  # by the other process: the cached keys are dropped at once
    assert state.peer_trust().issuers == []
    with pytest.raises(NotFound):
        state.unpin("coop-b")


def test_held_grants_are_secret_and_marked_when_their_issuer_revokes(
    tmp_path: Path, two: tuple[FederationState, FederationState]
) -> None:
    state, _ = two
    state.hold(_held("g1"))
    state.hold(_held("g2"))
    state.hold(_held("g1", issuer="coop-c"))  # same jti from another issuer: replaced by jti
    assert stat.S_IMODE((tmp_path / "node.db").stat().st_mode) == 0o600
    listed = RevocationList("coop-b")
    listed.revoke("g2", reason="board decision", expires_at=int(time.time()) + 600)
    assert state.store_peer_revocations("coop-b", listed) == ["g2"]
    assert state.held_grant("g2").revoked_reason == "board decision"
    assert state.held_grant("g1").revoked_reason is None
    assert state.store_peer_revocations("coop-b", listed) == []  # marked once
    assert state.peer_revocations("coop-b").revocations.sequence == 1


@pytest.mark.parametrize("two", ["coop-b"], indirect=True)
def test_grant_decisions_are_appended(two: tuple[FederationState, FederationState]) -> None:
    state, _ = two
    state.record_decision({"peer": "coop-c", "allowed": False, "grant": None})
    state.record_decision({"peer": "coop-a", "allowed": True, "grant": {"jti": "g1", "expires_at": 1}})
    assert [g["jti"] for g in state.issued()] == ["g1"]
    with pytest.raises(NotFound):
        state.issued_grant("g2")


# --- a co-op upgrading from the release that kept these in files ------------------------------


def _write_files(folder: Path) -> tuple[PeerRecord, HeldGrant, RevocationList]:
    folder.mkdir(parents=True, exist_ok=True)
    peer, held = _record("coop-b"), _held("g1")
    (folder / "peers.json").write_text(json.dumps({"version": 1, "peers": {"coop-b": peer.to_dict()}}))
    own = RevocationList("coop-a")
    own.revoke("g0", reason="board decision", expires_at=int(time.time()) + 600)
    own.save(folder / "revocations.json")
    (folder / "held-grants.json").write_text(json.dumps({"version": 1, "grants": {"g1": held.to_dict()}}))
    theirs = RevocationList("coop-b", sequence=3)
    (folder / "peer-revocations.json").write_text(
        json.dumps({"version": 1, "peers": {"coop-b": {"list": theirs.to_dict(), "fetched_at": 1234}}})
    )
    lines = [{"at": 1, "peer": "coop-c", "grant": None}, {"at": 2, "peer": "coop-b", "grant": {"jti": "g0"}}]
    (folder / "grant-decisions.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
    return peer, held, own


def test_an_upgrading_coop_keeps_its_pins_grants_and_revocations(tmp_path: Path) -> None:
    files = tmp_path / "federation"
    peer, held, own = _write_files(files)
    with _opened(tmp_path, "coop-a") as state:
        assert import_files(files, state.store, "coop-a") is True
        assert state.peers() == {"coop-b": peer}
        assert state.peer_trust().issuers == ["coop-b"]
        assert state.held() == {"g1": held}
        assert state.revocations().to_dict() == own.to_dict()
        assert state.peer_revocations("coop-b").fetched_at == 1234
        assert [g["jti"] for g in state.issued()] == ["g0"]
        assert sorted(p.name for p in files.iterdir()) == sorted(f"{n}.imported" for n in LEGACY_FILES)
        assert import_files(files, state.store, "coop-a") is False
        assert len(state.decisions()) == 2


def test_a_node_opened_on_an_upgraded_folder_has_its_pins_and_grants(tmp_path: Path) -> None:
    """The node (or the CLI) opening the folder imports the files: nothing else needs doing."""
    config = init_node(tmp_path / "node", node_id="coop-a", name="A", listen="127.0.0.1:0", policies=POLICIES)
    peer, held, own = _write_files(tmp_path / "node" / "federation")
    with open_node(load_settings(config)) as node:
        assert node.federation.state.peers() == {"coop-b": peer}
        assert node.federation.state.held_grant("g1") == held
    with open_node(load_settings(config)) as node:  # the second time from the database alone
        assert node.federation.state.revocations().to_dict() == own.to_dict()
        assert len(node.federation.state.decisions()) == 2


def test_files_found_beside_state_already_in_the_store_are_set_aside_unread(tmp_path: Path) -> None:
    files = tmp_path / "federation"
    _write_files(files)
    with _opened(tmp_path, "coop-a") as state:
        state.pin(_record("coop-x"))
        assert import_files(files, state.store, "coop-a") is False
        assert list(state.peers()) == ["coop-x"]
        assert not (files / "peers.json").exists()


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("peers.json", '{"peers": {"coop-b": {"manifest": 7}}}', "corrupt"),
        ("held-grants.json", "{not json", "corrupt"),
        ("revocations.json", RevocationList("coop-z").to_json(), "belongs to coop-z"),
    ],
)
def test_a_corrupt_or_foreign_file_stops_the_import_and_imports_nothing(
    tmp_path: Path, name: str, content: str, words: str
) -> None:
    files = tmp_path / "federation"
    _write_files(files)
    (files / name).write_text(content)
    with _opened(tmp_path, "coop-a") as state:
        with pytest.raises(FailedPrecondition, match=words) as info:
            import_files(files, state.store, "coop-a")
        assert name in str(info.value)
        assert state.peers() == {}
        assert state.held() == {}
        assert (files / name).exists()  # left for the operator to mend
        assert (files / "peers.json").exists()
