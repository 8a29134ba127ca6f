"""The contract every federation store keeps: peers pinned and unpinned with a version readers
poll, an idempotent revocation list whose sequence peers rely on, append-only grant decisions,
held grants marked once when their issuer revokes them, and a one-time import of old state."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coopfed.federation.revocation import RevocationList
from coopfed.node.storage import Store
from coopfed.node.storage.federation import FederationSnapshot, FederationStore

from .backends import BACKENDS, FEDERATION_BACKENDS

SOON = int(time.time()) + 600


@pytest.fixture(params=sorted(FEDERATION_BACKENDS))
def opened(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, FederationStore]]:
    with BACKENDS[request.param](tmp_path) as store:
        yield store, FEDERATION_BACKENDS[request.param](store)


@pytest.fixture
def fed(opened: tuple[Store, FederationStore]) -> FederationStore:
    return opened[1]


def _held(jti: str, issuer: str = "coop-b") -> dict:
    return {"jti": jti, "issuer": issuer, "token": "t-" + jti, "revoked_reason": None}


def test_peers_are_pinned_replaced_and_unpinned_and_each_change_bumps_the_version(
    fed: FederationStore,
) -> None:
    start = fed.peers_version()
    fed.pin("coop-b", {"n": 1})
    fed.pin("coop-c", {"n": 1})
    fed.pin("coop-b", {"n": 2, "nested": {"keys": ["x"]}})
    assert fed.peers() == {"coop-b": {"n": 2, "nested": {"keys": ["x"]}}, "coop-c": {"n": 1}}
    after_pins = fed.peers_version()
    assert after_pins != start
    assert fed.unpin("coop-c") is True
    assert fed.unpin("coop-c") is False
    assert fed.peers_version() != after_pins
    assert list(fed.peers()) == ["coop-b"]


def test_concurrent_pins_lose_no_update(fed: FederationStore) -> None:
    def pin_all(prefix: str) -> None:
        for i in range(10):
            fed.pin(f"{prefix}-{i}", {"i": i})

    threads = [threading.Thread(target=pin_all, args=(p,)) for p in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fed.peers()) == 30


def test_revoking_is_idempotent_and_bumps_the_sequence_once(fed: FederationStore) -> None:
    assert len(fed.revocations("coop-a")) == 0
    first = fed.revoke("coop-a", "g1", reason="misuse", expires_at=SOON)
    again = fed.revoke("coop-a", "g1", reason="other words", expires_at=SOON)
    assert again == first
    fed.revoke("coop-a", "g2", reason="board", expires_at=SOON)
    listed = fed.revocations("coop-a")
    assert listed.issuer == "coop-a"
    assert (listed.sequence, listed.reason_for("g1"), listed.reason_for("g2")) == (2, "misuse", "board")


def test_a_revocation_prunes_entries_that_can_no_longer_verify(fed: FederationStore) -> None:
    fed.revoke("coop-a", "old", reason="r", expires_at=1)  # expired long ago: pruned at once
    listed = fed.revocations("coop-a")
    assert "old" not in listed
    assert listed.sequence == 2  # one for the entry, one for pruning it, as RevocationList counts


def test_grant_decisions_are_kept_in_order_and_found_by_the_grant_they_issued(fed: FederationStore) -> None:
    fed.record_decision({"at": 1, "peer": "coop-c", "allowed": False, "grant": None})
    fed.record_decision(
        {"at": 2, "peer": "coop-a", "allowed": True, "grant": {"jti": "g1"}, "decision_id": "d1"}
    )
    fed.record_decision({"at": 3, "peer": "coop-a", "allowed": True, "grant": {"jti": "g2"}})
    assert [d["at"] for d in fed.decisions()] == [1, 2, 3]
    assert fed.decision_for("g1") == {
        "at": 2, "peer": "coop-a", "allowed": True, "grant": {"jti": "g1"}, "decision_id": "d1"
    }  # fmt: skip
    assert fed.decision_for("g9") is None


def test_held_grants_are_marked_once_when_their_issuer_revokes_them(fed: FederationStore) -> None:
    fed.hold(_held("g1"))
    fed.hold(_held("g2"))
    fed.hold(_held("g3", issuer="coop-c"))
    listed = RevocationList("coop-b")
    listed.revoke("g2", reason="board decision", expires_at=SOON)
    listed.revoke("g3", reason="not its grant", expires_at=SOON)  # coop-b cannot revoke coop-c's
    assert fed.store_peer_revocations("coop-b", listed, 1000) == ["g2"]
    assert fed.store_peer_revocations("coop-b", listed, 1001) == []
    held = fed.held()
    assert {j: g["revoked_reason"] for j, g in held.items()} == {
        "g1": None,
        "g2": "board decision",
        "g3": None,
    }
    assert held["g1"]["token"] == "t-g1"
    kept = fed.peer_revocations("coop-b")
    assert kept is not None
    assert (kept[0].to_dict(), kept[1]) == (listed.to_dict(), 1001)
    assert fed.peer_revocations("coop-c") is None


def test_holding_a_grant_again_replaces_it_by_jti(fed: FederationStore) -> None:
    fed.hold(_held("g1"))
    fed.hold(_held("g1", issuer="coop-c"))
    assert [(g["jti"], g["issuer"]) for g in fed.held().values()] == [("g1", "coop-c")]


def test_a_snapshot_is_imported_whole_once_and_never_over_existing_state(fed: FederationStore) -> None:
    own = RevocationList("coop-a")
    own.revoke("g0", reason="r", expires_at=SOON)
    theirs = RevocationList("coop-b", sequence=4)
    snapshot = FederationSnapshot(
        peers={"coop-b": {"n": 1}},
        revocations=own,
        decisions=[{"at": 1, "grant": {"jti": "g0"}}, {"at": 2, "grant": None}],
        held={"h1": {**_held("h1"), "revoked_reason": "gone"}},
        peer_revocations={"coop-b": (theirs, 77)},
    )
    assert fed.import_snapshot(snapshot) is True
    assert fed.peers() == {"coop-b": {"n": 1}}
    assert fed.revocations("coop-a").to_dict() == own.to_dict()
    assert [d["at"] for d in fed.decisions()] == [1, 2]
    assert fed.decision_for("g0") == {"at": 1, "grant": {"jti": "g0"}}
    assert fed.held()["h1"]["revoked_reason"] == "gone"
    assert fed.peer_revocations("coop-b") is not None
    assert fed.import_snapshot(FederationSnapshot(peers={"coop-z": {}})) is False
    assert list(fed.peers()) == ["coop-b"]


def test_state_survives_reopening(tmp_path: Path) -> None:
    for name in sorted(FEDERATION_BACKENDS):
        folder = tmp_path / name
        folder.mkdir()
        with BACKENDS[name](folder) as store:
            fed = FEDERATION_BACKENDS[name](store)
            fed.pin("coop-b", {"n": 1})
            fed.revoke("coop-a", "g1", reason="r", expires_at=SOON)
        with BACKENDS[name](folder) as store:
            fed = FEDERATION_BACKENDS[name](store)
            assert fed.peers() == {"coop-b": {"n": 1}}
            assert fed.revocations("coop-a").sequence == 1


def test_the_revocation_sequence_changes_with_every_change_to_the_list(fed: FederationStore) -> None:
    seen = [fed.revocation_sequence()]
    fed.revoke("coop-a", "g1", reason="r", expires_at=SOON)
    seen.append(fed.revocation_sequence())
    fed.revoke("coop-a", "g1", reason="r", expires_at=SOON)  # no change: the same sequence
    assert fed.revocation_sequence() == seen[-1]
    fed.revoke("coop-a", "g2", reason="r", expires_at=1)  # added and pruned at once
    seen.append(fed.revocation_sequence())
    assert len(set(seen)) == 3
    assert seen[-1] == fed.revocations("coop-a").sequence
