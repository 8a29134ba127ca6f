"""Revocation lists: revoking, pruning, storage, and signed publication with rollback detection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fedtools import ISSUER, NODE, NOW, PEER

from coopfed.federation.errors import TokenError
from coopfed.federation.grants import GrantScope, issue_grant, verify_grant
from coopfed.federation.keys import KeyRing, TrustStore, b64url, b64url_decode
from coopfed.federation.revocation import RevocationList, verify_publication
from coopfed.federation.tokens import TokenUse, verify_token


def listing(**revoked: int) -> RevocationList:
    """A list of coop-a with each jti revoked, expiring at the given time."""
    revocations = RevocationList(ISSUER)
    for jti, exp in revoked.items():
        revocations.revoke(jti, reason=f"reason for {jti}", expires_at=exp, now=NOW)
    return revocations


def code_of(exc_info: pytest.ExceptionInfo[TokenError]) -> str:
    return exc_info.value.code


def test_revoke_is_idempotent_and_bumps_the_sequence_once() -> None:
    revocations = RevocationList(ISSUER)
    first = revocations.revoke("g-1", reason="purpose changed", expires_at=NOW + 60, now=NOW)
    again = revocations.revoke("g-1", reason="other", expires_at=NOW + 60, now=NOW + 5)
    assert again == first
    assert revocations.sequence == 1
    assert "g-1" in revocations
    assert "g-2" not in revocations
    assert revocations.reason_for("g-1") == "purpose changed"
    assert revocations.reason_for("g-2") is None


def test_revoked_grant_is_refused_with_a_reason_for_the_grantee(
    ring: KeyRing, trust: TrustStore, scope: GrantScope
) -> None:
    token = issue_grant(ring, issuer=ISSUER, subject="uni", audience=NODE, scope=scope, jti="g-7")
    revocations = listing()
    assert verify_grant(token, trust=trust, audience=NODE, revoked=revocations).jti == "g-7"
    revocations.revoke("g-7", reason="ethics approval withdrawn", expires_at=NOW + 10**6)
    with pytest.raises(TokenError) as exc_info:
        verify_grant(token, trust=trust, audience=NODE, revoked=revocations)
    assert code_of(exc_info) == "revoked"
    assert exc_info.value.reason == "ethics approval withdrawn"  # type: ignore[attr-defined]


def test_prune_waits_for_expiry_plus_leeway() -> None:
    revocations = listing(old=NOW - 100, young=NOW + 100)
    sequence = revocations.sequence
    assert revocations.prune(now=NOW, leeway=200) == 0
    assert revocations.sequence == sequence
    assert revocations.prune(now=NOW, leeway=30) == 1
    assert [e.jti for e in revocations] == ["young"]
    assert revocations.sequence == sequence + 1


def test_list_round_trips_through_json_and_disk(tmp_path: Path) -> None:
    revocations = listing(a=NOW + 1, b=NOW + 2)
    assert RevocationList.from_json(revocations.to_json()).to_dict() == revocations.to_dict()
    revocations.save(tmp_path / "revoked.json")
    loaded = RevocationList.load_or_create(tmp_path / "revoked.json", ISSUER)
    assert loaded.entries == revocations.entries
    assert loaded.sequence == revocations.sequence
    assert RevocationList.load_or_create(tmp_path / "none.json", ISSUER).sequence == 0
    with pytest.raises(ValueError, match="coop-a"):
        RevocationList.load_or_create(tmp_path / "revoked.json", PEER)


@pytest.mark.parametrize(
    "entry",
    [
        {"jti": "", "reason": "", "revoked_at": 1, "expires_at": 2},
        {"jti": "x", "reason": 5, "revoked_at": 1, "expires_at": 2},
        {"jti": "x", "reason": "", "revoked_at": "1", "expires_at": 2},
        {"jti": "x", "reason": "", "revoked_at": 1},
    ],
)
def test_malformed_entries_are_refused(entry: dict[str, object]) -> None:
    raw = {"issuer": ISSUER, "sequence": 1, "revocations": [entry]}
    with pytest.raises((ValueError, KeyError)):
        RevocationList.from_json(json.dumps(raw))


def test_publication_round_trips(peer_ring: KeyRing, trust: TrustStore) -> None:
    revocations = RevocationList(PEER)
    revocations.revoke("g-1", reason="contract ended", expires_at=NOW + 3600, now=NOW)
    received = verify_publication(revocations.publish(peer_ring, now=NOW), trust=trust, issuer=PEER)
    assert received.to_dict() == revocations.to_dict()
    assert received.reason_for("g-1") == "contract ended"


def test_publication_signed_by_someone_else_is_refused(ring: KeyRing, trust: TrustStore) -> None:
    forged = RevocationList(PEER).publish(ring, now=NOW)  # coop-a's key pretending to speak for coop-b
    with pytest.raises(TokenError) as exc_info:
        verify_publication(forged, trust=trust, issuer=PEER)
    assert code_of(exc_info) == "unknown_key"


def test_tampered_publication_is_refused(peer_ring: KeyRing, trust: TrustStore) -> None:
    revocations = RevocationList(PEER)
    revocations.revoke("g-1", reason="r", expires_at=NOW + 3600)
    head, body, sig = revocations.publish(peer_ring, now=NOW).split(".")
    claims = json.loads(b64url_decode(body))
    claims["revocations"] = []  # un-revoke by editing
    tampered = f"{head}.{b64url(json.dumps(claims).encode())}.{sig}"
    with pytest.raises(TokenError) as exc_info:
        verify_publication(tampered, trust=trust, issuer=PEER)
    assert code_of(exc_info) == "bad_signature"


def test_stale_publication_expires(peer_ring: KeyRing, trust: TrustStore) -> None:
    token = RevocationList(PEER).publish(peer_ring, ttl=3600, now=NOW - 7200)
    with pytest.raises(TokenError) as exc_info:
        verify_publication(token, trust=trust, issuer=PEER)
    assert code_of(exc_info) == "expired"


def test_publication_is_not_a_grant(peer_ring: KeyRing, trust: TrustStore) -> None:
    token = RevocationList(PEER).publish(peer_ring, audience=NODE)
    with pytest.raises(TokenError) as exc_info:
        verify_grant(token, trust=trust, audience=NODE)
    assert code_of(exc_info) == "wrong_type"
    assert verify_token(token, trust=trust, audience=NODE, use=TokenUse.REVOCATION_LIST).issuer == PEER


def _published(ring: KeyRing, revocations: RevocationList, trust: TrustStore) -> RevocationList:
    return verify_publication(
        revocations.publish(ring, now=NOW), trust=trust, issuer=revocations.issuer, now=NOW
    )


def test_older_publication_is_a_rollback(peer_ring: KeyRing, trust: TrustStore) -> None:
    revocations = RevocationList(PEER)
    old_token = revocations.publish(peer_ring, now=NOW)
    revocations.revoke("g-1", reason="r", expires_at=NOW + 3600, now=NOW)
    held = _published(peer_ring, revocations, trust)
    with pytest.raises(TokenError) as exc_info:
        verify_publication(old_token, trust=trust, issuer=PEER, previous=held, now=NOW)
    assert code_of(exc_info) == "rollback"


def test_older_publication_is_refused_even_when_it_drops_nothing(
    peer_ring: KeyRing, trust: TrustStore
) -> None:
    revocations = RevocationList(PEER)
    revocations.revoke("short", reason="r", expires_at=NOW - 3600, now=NOW - 7200)
    old_token = revocations.publish(peer_ring, now=NOW)  # sequence 1, one expired entry
    revocations.prune(now=NOW)
    held = _published(peer_ring, revocations, trust)  # sequence 2, empty
    with pytest.raises(TokenError) as exc_info:
        verify_publication(old_token, trust=trust, issuer=PEER, previous=held, now=NOW)
    assert code_of(exc_info) == "rollback"


def test_same_sequence_with_other_content_is_a_rollback(peer_ring: KeyRing, trust: TrustStore) -> None:
    one, other = RevocationList(PEER), RevocationList(PEER)
    one.revoke("g-1", reason="r", expires_at=NOW + 3600, now=NOW)
    other.revoke("g-2", reason="r", expires_at=NOW + 3600, now=NOW)
    held = _published(peer_ring, one, trust)
    assert verify_publication(
        one.publish(peer_ring, now=NOW), trust=trust, issuer=PEER, previous=held, now=NOW
    )
    with pytest.raises(TokenError) as exc_info:
        verify_publication(
            other.publish(peer_ring, now=NOW), trust=trust, issuer=PEER, previous=held, now=NOW
        )
    assert code_of(exc_info) == "rollback"


def test_newer_list_may_drop_only_expired_entries(peer_ring: KeyRing, trust: TrustStore) -> None:
    revocations = RevocationList(PEER)
    revocations.revoke("short", reason="r", expires_at=NOW - 3600, now=NOW - 7200)
    revocations.revoke("long", reason="r", expires_at=NOW + 3600, now=NOW)
    held = _published(peer_ring, revocations, trust)

    pruned = RevocationList.from_dict(revocations.to_dict())
    assert pruned.prune(now=NOW) == 1
    assert _published(peer_ring, pruned, trust).sequence == held.sequence + 1
    assert verify_publication(
        pruned.publish(peer_ring, now=NOW), trust=trust, issuer=PEER, previous=held, now=NOW
    )

    forged = RevocationList(PEER, [e for e in revocations if e.jti != "long"], held.sequence + 5)
    with pytest.raises(TokenError) as exc_info:
        verify_publication(
            forged.publish(peer_ring, now=NOW), trust=trust, issuer=PEER, previous=held, now=NOW
        )
    assert code_of(exc_info) == "rollback"


def test_malformed_publication_body_is_refused(peer_ring: KeyRing, trust: TrustStore) -> None:
    from coopfed.federation.revocation import REVOCATION_AUDIENCE
    from coopfed.federation.tokens import issue_token

    token = issue_token(
        peer_ring,
        issuer=PEER,
        subject=PEER,
        audience=REVOCATION_AUDIENCE,
        use=TokenUse.REVOCATION_LIST,
        ttl=60,
        claims={"seq": -1, "revocations": []},
    )
    with pytest.raises(TokenError) as exc_info:
        verify_publication(token, trust=trust, issuer=PEER)
    assert code_of(exc_info) == "malformed"
