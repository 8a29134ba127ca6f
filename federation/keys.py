"""Ed25519 signing keys, JWK/JWKS, RFC 7638 thumbprints, the node's key ring and pinned peer keys."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from coopfed.federation.atomic import replacing, write_atomic
from coopfed.federation.canonical import canonical_json
from coopfed.federation.errors import KeyStoreError

ALGORITHM = "EdDSA"
_RING_FILE = "keyring.json"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def format_fingerprint(digest: bytes) -> str:
    """Upper-case hex pairs joined by colons, the way people compare fingerprints aloud."""
    return ":".join(f"{b:02X}" for b in digest)


def raw_public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, for display when pinning a peer."""
    return format_fingerprint(hashlib.sha256(raw_public_bytes(key)).digest())


_THUMBPRINT_MEMBERS = {"OKP": ("crv", "kty", "x"), "EC": ("crv", "kty", "x", "y")}  # RFC 7638 §3.2


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint of an OKP or EC key: SHA-256 over the required members in canonical
    JSON, base64url. Every kid in coopfed, node and board keys alike, is one."""
    required = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    return b64url(hashlib.sha256(canonical_json(required)).digest())


def ec_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The public JWK of a P-256 key (RFC 7518), without kid."""
    numbers = key.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    """The public JWK (RFC 8037) with `kid` set to its thumbprint."""
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw_public_bytes(key))}
    return {**jwk, "kid": jwk_thumbprint(jwk), "use": "sig", "alg": ALGORITHM}


def public_key_from_jwk(jwk: Mapping[str, Any]) -> Ed25519PublicKey:
    """Parse a public Ed25519 JWK strictly; private members and mismatched `kid`s are refused."""
    if not isinstance(jwk, Mapping):
        raise KeyStoreError("JWK must be an object")
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise KeyStoreError("JWK must be an OKP Ed25519 key")
    if "d" in jwk:
        raise KeyStoreError("JWK carries private key material")
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", ALGORITHM) != ALGORITHM:
        raise KeyStoreError("JWK must be for EdDSA signatures")
    x = jwk.get("x")
    if not isinstance(x, str) or len(x) != 43:
        raise KeyStoreError("JWK x must be 32 bytes, base64url")
    try:
        key = Ed25519PublicKey.from_public_bytes(b64url_decode(x))
    except ValueError as exc:
        raise KeyStoreError("JWK x is not a valid Ed25519 public key") from exc
    if jwk.get("kid", jwk_thumbprint(jwk)) != jwk_thumbprint(jwk):
        raise KeyStoreError("JWK kid is not its RFC 7638 thumbprint")
    return key


@contextlib.contextmanager
def open_private(path: Path, *, newline: str | None = None) -> Iterator[TextIO]:
    """Write a text file readable by the owner only (mode 0600), e.g. an export of members' data.

    The file appears when the block ends without an error, whole."""
    with replacing(path, 0o600) as fh:
        text = io.TextIOWrapper(fh, encoding="utf-8", newline=newline)
        yield text
        text.flush()
        text.detach()  # the binary file is replacing's to sync and close


def write_private(path: Path, data: bytes) -> None:
    """Write secret material readable by the owner only (mode 0600), atomically."""
    write_atomic(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    write_atomic(path, data, 0o644)


def read_private(path: Path) -> bytes:
    """Read secret material, refusing files that group or others can read or write."""
    try:
        if os.name == "posix" and path.stat().st_mode & 0o077:
            raise KeyStoreError(f"{path} is accessible by other users; chmod 600 it")
        return path.read_bytes()
    except OSError as exc:
        raise KeyStoreError(f"cannot read {path}: {exc.strerror}") from exc


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key and its `kid` (RFC 7638 thumbprint of the public key)."""

    private_key: Ed25519PrivateKey
    kid: str

    @classmethod
    def generate(cls) -> SigningKey:
        return cls.from_private_key(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_key(cls, key: Ed25519PrivateKey) -> SigningKey:
        return cls(key, public_jwk(key.public_key())["kid"])

    @classmethod
    def from_pem(cls, data: bytes) -> SigningKey:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyStoreError("not an unencrypted PEM private key") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyStoreError("private key is not Ed25519")
        return cls.from_private_key(key)

    @classmethod
    def load(cls, path: str | Path) -> SigningKey:
        return cls.from_pem(read_private(Path(path)))

    def save(self, path: str | Path) -> None:
        write_private(Path(path), self.to_pem())

    def to_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, str]:
        return public_jwk(self.public_key)


class Jwks(Mapping[str, Ed25519PublicKey]):
    """An immutable set of public verification keys indexed by `kid`."""

    def __init__(self, keys: Iterable[Ed25519PublicKey] = ()) -> None:
        self._keys = {public_jwk(k)["kid"]: k for k in keys}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Jwks:
        """Import a JWKS document (`{"keys": [...]}`); any unacceptable key fails the whole set."""
        keys = data.get("keys") if isinstance(data, Mapping) else None
        if not isinstance(keys, list):
            raise KeyStoreError("JWKS must be an object with a 'keys' list")
        return cls(public_key_from_jwk(jwk) for jwk in keys)

    def to_dict(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [public_jwk(k) for k in self._keys.values()]}

    def fingerprints(self) -> dict[str, str]:
        """kid -> SHA-256 fingerprint of the raw public key."""
        return {kid: key_fingerprint(k) for kid, k in self._keys.items()}

    def __getitem__(self, kid: str) -> Ed25519PublicKey:
        return self._keys[kid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"Jwks({sorted(self._keys)})"


class KeyRing:
    """The node's signing keys: one active signer plus older keys kept for verification only.

    Persisted as a directory (mode 0700): `keyring.json` lists the kids, their creation time and
    which one is active; each private key is `<kid>.pem` (mode 0600). Rotation adds a key and makes
    it active; the previous keys still verify until they are retired, which deletes them.

    A ring on disk is live: every read first checks the index file (one stat) and reloads when
    another process (the CLI's rotate-key or retire-key) changed it, so a rotation or a
    retirement takes effect at once for everything that signs or verifies with this ring.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._keys: dict[str, SigningKey] = {}
        self._created: dict[str, int] = {}
        self._active = ""
        self._seen: tuple[int, int, int] | None = None  # the index file as last read or written
        self._trust: dict[str, TrustStore] = {}  # issuer -> this ring as its only keys

    def _index_signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self._dir / _RING_FILE)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _fresh(self) -> None:
        """Reload in place if the index on disk is not the one this ring last read or wrote."""
        if self.path is None or self._seen is None:
            return
        seen = self._index_signature()
        if seen is None or seen == self._seen:
            return
        other = KeyRing.load(self.path)
        self._keys, self._created, self._active = other._keys, other._created, other._active
        self._seen, self._trust = other._seen, {}

    @classmethod
    def load_or_create(cls, path: str | Path) -> KeyRing:
        """Open the ring at `path`, or create it there with one fresh key."""
        if (Path(path) / _RING_FILE).exists():
            return cls.load(path)
        ring = cls(path)
        ring.rotate()
        return ring

    @classmethod
    def load(cls, path: str | Path) -> KeyRing:
        ring = cls(path)
        seen = ring._index_signature()  # before reading: a change while reading shows next time
        try:
            meta = json.loads((ring._dir / _RING_FILE).read_text("utf-8"))
            entries = [(e["kid"], int(e["created_at"])) for e in meta["keys"]]
            active = meta["active"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyStoreError(f"cannot read key ring at {path}") from exc
        for kid, created_at in entries:
            key = SigningKey.load(ring._dir / f"{kid}.pem")
            if key.kid != kid:
                raise KeyStoreError(f"key file {kid}.pem holds another key")
            ring._keys[kid], ring._created[kid] = key, created_at
        if active not in ring._keys:
            raise KeyStoreError("key ring names an active key it does not hold")
        ring._active = active
        ring._seen = seen
        return ring

    @property
    def _dir(self) -> Path:
        if self.path is None:
            raise KeyStoreError("this key ring lives in memory only")
        return self.path

    @property
    def signer(self) -> SigningKey:
        """The key new tokens are signed with."""
        self._fresh()
        if not self._active:
            raise KeyStoreError("key ring is empty")
        return self._keys[self._active]

    @property
    def kids(self) -> list[str]:
        """Kids from oldest to newest."""
        self._fresh()
        return sorted(self._keys, key=lambda kid: self._created[kid])

    def created_at(self, kid: str) -> int:
        self._fresh()
        return self._created[kid]

    def jwks(self) -> Jwks:
        """Public keys of every key not yet retired: what peers pin and verifiers use."""
        return Jwks(self._keys[kid].public_key for kid in self.kids)

    def trust(self, issuer: str) -> TrustStore:
        """This ring's current keys as the only keys of `issuer`: what the node's own tokens are
        verified against. Built once per change of the ring, so a verification costs one stat."""
        self._fresh()
        store = self._trust.get(issuer)
        if store is None:
            store = self._trust[issuer] = TrustStore({issuer: self.jwks()})
        return store

    def add(self, key: SigningKey, *, activate: bool = True, now: int | None = None) -> None:
        self._fresh()  # add to the ring as it is on disk, not to a stale copy
        self._keys[key.kid] = key
        self._created[key.kid] = int(time.time()) if now is None else now
        if activate or not self._active:
            self._active = key.kid
        self.save()

    def rotate(self, *, now: int | None = None) -> SigningKey:
        """Add a fresh key and sign with it from now on; older keys stay verify-only."""
        key = SigningKey.generate()
        self.add(key, activate=True, now=now)
        return key

    def retire(self, kid: str) -> None:
        """Forget a verify-only key: tokens it signed stop verifying."""
        self._fresh()
        if kid == self._active:
            raise KeyStoreError("cannot retire the active signing key; rotate first")
        if kid not in self._keys:
            raise KeyStoreError(f"no key {kid} in the ring")
        del self._keys[kid], self._created[kid]
        self.save()
        if self.path is not None:
            (self.path / f"{kid}.pem").unlink(missing_ok=True)

    def save(self) -> None:
        """Write every key file, then the index (so the index never names a missing file)."""
        self._trust = {}
        if self.path is None:
            return
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        for kid, key in self._keys.items():
            pem = self.path / f"{kid}.pem"
            if not pem.exists():
                key.save(pem)
        entries = [{"kid": kid, "created_at": self._created[kid]} for kid in self.kids]
        meta = {"version": 1, "active": self._active, "keys": entries}
        write_private(self.path / _RING_FILE, json.dumps(meta, indent=2).encode("utf-8"))
        self._seen = self._index_signature()


class TrustStore:
    """Pinned verification keys per issuer (peer co-ops pinned at join time, and the node itself)."""

    def __init__(self, pins: Mapping[str, Jwks] | None = None) -> None:
        self._pins: dict[str, Jwks] = dict(pins or {})

    def pin(self, issuer: str, jwks: Jwks) -> None:
        """Pin (or re-pin after a peer's rotation) the keys tokens from `issuer` must be signed with."""
        if not issuer:
            raise KeyStoreError("issuer must be non-empty")
        self._pins[issuer] = jwks

    def unpin(self, issuer: str) -> None:
        self._pins.pop(issuer, None)

    def key_for(self, issuer: str, kid: str) -> Ed25519PublicKey | None:
        jwks = self._pins.get(issuer)
        return jwks.get(kid) if jwks is not None else None

    def jwks_for(self, issuer: str) -> Jwks | None:
        return self._pins.get(issuer)

    def fingerprints(self, issuer: str) -> dict[str, str]:
        jwks = self._pins.get(issuer)
        return jwks.fingerprints() if jwks is not None else {}

    @property
    def issuers(self) -> list[str]:
        return sorted(self._pins)

    def __contains__(self, issuer: object) -> bool:
        return issuer in self._pins

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "issuers": {iss: j.to_dict() for iss, j in sorted(self._pins.items())}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrustStore:
        issuers = data.get("issuers") if isinstance(data, Mapping) else None
        if not isinstance(issuers, Mapping):
            raise KeyStoreError("trust store must be an object with an 'issuers' object")
        return cls({str(iss): Jwks.from_dict(jwks) for iss, jwks in issuers.items()})

    def save(self, path: str | Path) -> None:
        write_public(Path(path), json.dumps(self.to_dict(), indent=2).encode("utf-8"))

    @classmethod
    def load(cls, path: str | Path) -> TrustStore:
        try:
            data = json.loads(Path(path).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"cannot read trust store {path}") from exc
        return cls.from_dict(data)

    @classmethod
    def load_or_empty(cls, path: str | Path) -> TrustStore:
        return cls.load(path) if Path(path).exists() else cls()
