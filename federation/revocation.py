"""Revocation lists of grants, and their signed, sequence-numbered publication to peers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from coopfed.federation import errors
from coopfed.federation.keys import KeyRing, TrustStore, write_public
from coopfed.federation.tokens import DEFAULT_LEEWAY, TokenUse, issue_token, verify_token

REVOCATION_AUDIENCE = "coopfed:federation"  # publications are for every peer and grantee
DEFAULT_PUBLICATION_TTL = 24 * 3600  # peers must refresh at least daily; a stale list expires
MAX_PUBLICATION_LENGTH = 4 * 1024 * 1024


@dataclass(frozen=True)
class RevocationEntry:
    """One revoked token. `reason` is shown to the grantee; the entry may be pruned once the
    token has expired (`expires_at` plus leeway), since it can no longer verify anyway."""

    jti: str
    reason: str
    revoked_at: int
    expires_at: int

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RevocationEntry:
        entry = cls(raw["jti"], raw["reason"], raw["revoked_at"], raw["expires_at"])
        if not (isinstance(entry.jti, str) and entry.jti and isinstance(entry.reason, str)):
            raise ValueError("jti must be a non-empty string and reason a string")
        if type(entry.revoked_at) is not int or type(entry.expires_at) is not int:
            raise ValueError("revoked_at and expires_at must be integers")
        return entry


class RevocationList:
    """An issuer's revoked jtis. Every change bumps `sequence`, so peers can detect rollback."""

    def __init__(self, issuer: str, entries: Iterable[RevocationEntry] = (), sequence: int = 0) -> None:
        if not isinstance(issuer, str) or not issuer or type(sequence) is not int or sequence < 0:
            raise ValueError("issuer must be non-empty and sequence a non-negative integer")
        self.issuer = issuer
        self.sequence = sequence
        self._entries = {e.jti: e for e in entries}

    def revoke(self, jti: str, *, reason: str, expires_at: int, now: int | None = None) -> RevocationEntry:
        """Revoke `jti` (idempotent: revoking twice keeps the first entry and sequence)."""
        if jti in self._entries:
            return self._entries[jti]
        revoked_at = int(time.time()) if now is None else now
        entry = RevocationEntry.from_dict(
            {"jti": jti, "reason": reason, "revoked_at": revoked_at, "expires_at": expires_at}
        )
        self._entries[jti] = entry
        self.sequence += 1
        return entry

    def reason_for(self, jti: str) -> str | None:
        entry = self._entries.get(jti)
        return entry.reason if entry is not None else None

    def prune(self, *, now: int | None = None, leeway: int = DEFAULT_LEEWAY) -> int:
        """Drop entries whose tokens can no longer verify; returns how many were dropped."""
        now = int(time.time()) if now is None else now
        stale = [jti for jti, e in self._entries.items() if _prunable(e, now, leeway)]
        for jti in stale:
            del self._entries[jti]
        if stale:
            self.sequence += 1
        return len(stale)

    @property
    def entries(self) -> list[RevocationEntry]:
        return sorted(self._entries.values(), key=lambda e: (e.revoked_at, e.jti))

    def __contains__(self, jti: object) -> bool:
        return jti in self._entries

    def __iter__(self) -> Iterator[RevocationEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self._entries)

    def to_dict(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "sequence": self.sequence,
            "revocations": [asdict(e) for e in self.entries],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RevocationList:
        entries = raw["revocations"]
        if not isinstance(entries, list):
            raise ValueError("revocations must be a list")
        return cls(raw["issuer"], map(RevocationEntry.from_dict, entries), raw["sequence"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RevocationList:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        write_public(Path(path), self.to_json().encode("utf-8"))

    @classmethod
    def load_or_create(cls, path: str | Path, issuer: str) -> RevocationList:
        path = Path(path)
        if not path.exists():
            return cls(issuer)
        found = cls.from_json(path.read_text("utf-8"))
        if found.issuer != issuer:
            raise ValueError(f"{path} holds the revocation list of {found.issuer}")
        return found

    def publish(
        self,
        ring: KeyRing,
        *,
        ttl: int = DEFAULT_PUBLICATION_TTL,
        audience: str = REVOCATION_AUDIENCE,
        now: int | None = None,
    ) -> str:
        """The list as a signed JWT (typ `coopfed-revocation-list+jwt`) carrying its sequence."""
        body = self.to_dict()
        claims = {"seq": body["sequence"], "revocations": body["revocations"]}
        return issue_token(
            ring,
            issuer=self.issuer,
            subject=self.issuer,
            audience=audience,
            use=TokenUse.REVOCATION_LIST,
            ttl=ttl,
            claims=claims,
            now=now,
        )


def _prunable(entry: RevocationEntry, now: int, leeway: int) -> bool:
    return entry.expires_at + leeway < now


def verify_publication(
    token: str,
    *,
    trust: TrustStore,
    issuer: str,
    previous: RevocationList | None = None,
    audience: str = REVOCATION_AUDIENCE,
    leeway: int = DEFAULT_LEEWAY,
    now: int | None = None,
) -> RevocationList:
    """Verify a peer's published list and check it does not roll back `previous`.

    Refused with `Rollback`: a lower sequence than `previous`, a different list under the same
    sequence, or a newer list that drops an entry whose token could still verify.
    """
    verified = verify_token(
        token,
        trust=trust,
        audience=audience,
        use=TokenUse.REVOCATION_LIST,
        issuer=issuer,
        leeway=leeway,
        now=now,
        max_length=MAX_PUBLICATION_LENGTH,
    )
    claims = verified.claims
    now = int(time.time()) if now is None else now
    try:
        raw = {"issuer": verified.issuer, "sequence": claims["seq"], "revocations": claims["revocations"]}
        published = RevocationList.from_dict(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise errors.Malformed("revocation list is malformed") from exc
    if previous is not None:
        _check_no_rollback(previous, published, now, leeway)
    return published


def _check_no_rollback(previous: RevocationList, published: RevocationList, now: int, leeway: int) -> None:
    if previous.issuer != published.issuer:
        raise ValueError("previous list belongs to another issuer")
    if published.sequence < previous.sequence:
        raise errors.Rollback("revocation list is older than the one already held")
    if published.sequence == previous.sequence and published.entries != previous.entries:
        raise errors.Rollback("two different revocation lists carry the same sequence")
    dropped = [e.jti for e in previous if e.jti not in published and not _prunable(e, now, leeway)]
    if dropped:
        raise errors.Rollback(f"revocation list drops {len(dropped)} unexpired revocation(s)")
