"""The technical board's bundle-signing keys: ECDSA P-256 (ES256), as OPA's bundle verification accepts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from coopfed.federation.errors import KeyStoreError
from coopfed.federation.keys import (
    ec_jwk,
    format_fingerprint,
    jwk_thumbprint,
    read_private,
    write_private,
    write_public,
)

ALGORITHM = "ES256"
"""OPA verifies bundle signatures with ES/HS/PS/RS algorithms only (no EdDSA), so board keys are P-256."""


def key_id(key: ec.EllipticCurvePublicKey) -> str:
    """The key's RFC 7638 thumbprint: its kid."""
    return jwk_thumbprint(ec_jwk(key))


def fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    """SHA-256 of the DER public key, in hex pairs, for board members to compare aloud."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return format_fingerprint(hashlib.sha256(der).digest())


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM: what `opa run --verification-key` reads."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_curve(key: object) -> ec.EllipticCurvePublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyStoreError("a board key must be an ECDSA P-256 key (ES256)")
    return key


@dataclass(frozen=True)
class BoardSigningKey:
    """One board member's private signing key and its kid."""

    private_key: ec.EllipticCurvePrivateKey
    kid: str

    @classmethod
    def generate(cls) -> BoardSigningKey:
        private = ec.generate_private_key(ec.SECP256R1())
        return cls(private, key_id(private.public_key()))

    @classmethod
    def load(cls, path: str | Path) -> BoardSigningKey:
        """A PKCS#8 PEM private key readable by its owner only."""
        data = read_private(Path(path))
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyStoreError(f"{path} is not an unencrypted PEM private key") from exc
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise KeyStoreError(f"{path} is not an ECDSA key; board keys are P-256 (ES256)")
        _check_curve(private.public_key())
        return cls(private, key_id(private.public_key()))

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.private_key.public_key()

    def save(self, private_path: str | Path, public_path: str | Path) -> None:
        """Write the private key (mode 0600) and the public key PEM beside it."""
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_private(Path(private_path), pem)
        write_public(Path(public_path), public_pem(self.public_key))


def load_public_key(path: str | Path) -> ec.EllipticCurvePublicKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyStoreError(f"cannot read board key {path}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyStoreError(f"{path} is not a PEM public key") from exc
    return _check_curve(key)


class BoardKeySet(Mapping[str, ec.EllipticCurvePublicKey]):
    """The board's public keys by kid; the same key listed twice counts once."""

    def __init__(self, keys: Iterable[ec.EllipticCurvePublicKey] = ()) -> None:
        self._keys = {key_id(k): k for k in keys}

    @classmethod
    def load(cls, paths: Iterable[str | Path]) -> BoardKeySet:
        return cls(load_public_key(p) for p in paths)

    def __getitem__(self, kid: str) -> ec.EllipticCurvePublicKey:
        return self._keys[kid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"BoardKeySet({sorted(self._keys)})"
