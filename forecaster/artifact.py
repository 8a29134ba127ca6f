"""Signed model artifacts: booster bytes plus JSON metadata, signed with the trainer's Ed25519 key.

Container (all integers big-endian):
    b"CFMODEL2" | u32 metadata length | metadata (canonical JSON, UTF-8)
    | u16 signature length (64) | Ed25519 signature | u64 booster length | booster (UBJSON)
    | u16 quantile booster count (0 or one per target) | per booster: u64 length | booster (UBJSON)
The booster makes the point forecast (squared error, all targets); each quantile booster, one
target's P10/P50/P90 band. The signature covers b"coopfed-model/2\\n" + metadata; the metadata
carries every booster's SHA-256, so one signature binds all. Nothing in an artifact is used
before `verify` has passed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import rfc8785
import xgboost as xgb
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import ArtifactFormatError, ArtifactVerificationError

FORMAT = "coopfed-model/2"
MAGIC = b"CFMODEL2"
_OLD_MAGIC = b"CFMODEL1"  # coopfed-model/1: no quantile booster
_DOMAIN = b"coopfed-model/2\n"
_MAX_METADATA = 1 << 20
_MAX_BOOSTER = 1 << 30
_SIG_LEN = 64


@dataclass(frozen=True)
class ArtifactMetadata:
    """What a trained booster is, who trained it, on what, and the hash of its bytes."""

    version: int  # model version, chosen by the trainer, increasing per co-op
    coop_id: str  # the co-op (node) that trained and signed it
    kind: str  # "local" (own aggregates) or "pooled" (aggregates of several co-ops)
    trained_at: str  # ISO 8601 UTC
    feature_names: tuple[str, ...]
    targets: tuple[str, ...]
    training_rows: int
    contributors: tuple[str, ...]  # co-ops whose aggregates went into training
    technology: dict[str, float]  # shares of the contributors' installed kW by technology; {}: unknown
    xgboost_version: str
    params: dict[str, Any]
    quantiles: tuple[float, ...]  # levels of the quantile boosters' outputs; () when there are none
    band_widening: tuple[float, ...]  # per target: conformal widening of the P10-P90 band (x width)
    sha256: str  # of the booster bytes
    quantile_sha256: tuple[str, ...]  # of each quantile booster's bytes
    format: str = FORMAT

    def to_json(self) -> bytes:
        """The signed form: RFC 8785 canonical JSON."""
        return rfc8785.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> ArtifactMetadata:
        try:
            doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ArtifactFormatError(f"metadata is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict) or set(doc) != _FIELDS:
            raise ArtifactFormatError(f"metadata must have exactly the fields {sorted(_FIELDS)}")
        _check_types(doc)
        meta = cls(
            **{
                **doc,
                "feature_names": tuple(doc["feature_names"]),
                "targets": tuple(doc["targets"]),
                "contributors": tuple(doc["contributors"]),
                "quantiles": tuple(doc["quantiles"]),
                "band_widening": tuple(doc["band_widening"]),
                "quantile_sha256": tuple(doc["quantile_sha256"]),
            }
        )
        if meta.format != FORMAT:
            raise ArtifactFormatError(f"unsupported artifact format {meta.format!r}")
        if raw != meta.to_json():  # format 2 was signed in RFC 8785 from the start
            raise ArtifactFormatError("metadata is not in canonical form")
        return meta


_FIELDS = set(ArtifactMetadata.__dataclass_fields__)
_TYPES = {
    "version": int, "coop_id": str, "kind": str, "trained_at": str, "feature_names": list,
    "targets": list, "training_rows": int, "contributors": list, "technology": dict, "xgboost_version": str,
    "params": dict, "quantiles": list, "band_widening": list, "sha256": str,
    "quantile_sha256": list, "format": str,
}  # fmt: skip


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key in metadata")
    return dict(pairs)


def _check_types(doc: dict[str, Any]) -> None:
    for name, kind in _TYPES.items():
        value = doc[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ArtifactFormatError(f"metadata field {name!r} must be {kind.__name__}")
    for name in ("feature_names", "targets", "contributors", "quantile_sha256"):
        if not all(isinstance(v, str) for v in doc[name]):
            raise ArtifactFormatError(f"metadata field {name!r} must list strings")
    for name, values in (("quantiles", doc["quantiles"]), ("band_widening", doc["band_widening"]),
                         ("technology", doc["technology"].values())):  # fmt: skip
        if not all(isinstance(v, float | int) and not isinstance(v, bool) for v in values):
            raise ArtifactFormatError(f"metadata field {name!r} must list numbers")


@dataclass(frozen=True)
class ModelArtifact:
    """A signed booster. Use `load_booster(key)`: it verifies before it loads."""

    metadata: ArtifactMetadata
    booster: bytes
    signature: bytes
    metadata_bytes: bytes  # exactly the signed bytes
    quantile_boosters: tuple[bytes, ...] = ()  # one per target, or none (no band)

    def to_bytes(self) -> bytes:
        return b"".join(
            [
                MAGIC,
                struct.pack(">I", len(self.metadata_bytes)),
                self.metadata_bytes,
                struct.pack(">H", len(self.signature)),
                self.signature,
                struct.pack(">Q", len(self.booster)),
                self.booster,
                struct.pack(">H", len(self.quantile_boosters)),
                *(struct.pack(">Q", len(q)) + q for q in self.quantile_boosters),
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelArtifact:
        """Parse a container; lengths are checked against the data before anything is read."""
        view = memoryview(data)
        if bytes(view[:8]) == _OLD_MAGIC:
            raise ArtifactFormatError("a model of the older format coopfed-model/1 (no band): train it again")
        if bytes(view[:8]) != MAGIC:
            raise ArtifactFormatError("not a coopfed model artifact (bad magic)")
        pos = 8
        meta_raw, pos = _field(view, pos, ">I", _MAX_METADATA, "metadata")
        sig, pos = _field(view, pos, ">H", _SIG_LEN, "signature")
        booster, pos = _field(view, pos, ">Q", _MAX_BOOSTER, "booster")
        if pos + 2 > len(view):
            raise ArtifactFormatError("truncated before the quantile booster count")
        (count,) = struct.unpack(">H", view[pos : pos + 2])
        pos += 2
        quantile = []
        for _ in range(count):
            blob, pos = _field(view, pos, ">Q", _MAX_BOOSTER, "quantile booster")
            quantile.append(blob)
        if pos != len(view):
            raise ArtifactFormatError("trailing bytes after the quantile boosters")
        if len(sig) != _SIG_LEN:
            raise ArtifactFormatError("Ed25519 signature must be 64 bytes")
        return cls(ArtifactMetadata.from_json(meta_raw), booster, sig, meta_raw, tuple(quantile))

    def save(self, path: str | Path) -> Path:
        out = Path(path)
        out.write_bytes(self.to_bytes())
        return out

    @classmethod
    def load(cls, path: str | Path) -> ModelArtifact:
        """Parse an artifact file (still unverified: call `verify` or `load_booster`)."""
        return cls.from_bytes(Path(path).read_bytes())

    def verify(self, public_key: Ed25519PublicKey) -> None:
        """Raise ArtifactVerificationError unless `public_key` signed exactly these bytes."""
        if not isinstance(public_key, Ed25519PublicKey):
            raise ArtifactVerificationError("verification needs an Ed25519 public key")
        try:
            public_key.verify(self.signature, _DOMAIN + self.metadata_bytes)
        except InvalidSignature as exc:
            raise ArtifactVerificationError(
                f"bad signature on model v{self.metadata.version} from {self.metadata.coop_id!r}"
                " (metadata altered or signed with another key)"
            ) from exc
        self.check_hashes()

    def check_hashes(self) -> None:
        """Raise ArtifactVerificationError unless every booster matches its hash in the metadata
        (which only a verified signature makes trustworthy)."""
        blobs = (self.booster, *self.quantile_boosters)
        signed = (self.metadata.sha256, *self.metadata.quantile_sha256)
        if len(blobs) != len(signed):
            raise ArtifactVerificationError(
                f"model v{self.metadata.version} from {self.metadata.coop_id!r} holds"
                f" {len(blobs) - 1} quantile boosters; its signed metadata names {len(signed) - 1}"
            )
        for blob, digest in zip(blobs, signed, strict=True):
            if not hmac.compare_digest(_sha256(blob), digest):
                raise ArtifactVerificationError(
                    f"booster bytes of model v{self.metadata.version} from {self.metadata.coop_id!r}"
                    " do not match the signed SHA-256"
                )

    def load_booster(self, public_key: Ed25519PublicKey) -> xgb.Booster:
        """Verify, then load the booster; its feature names must match the metadata."""
        self.verify(public_key)
        return _load(self.booster, self.metadata.feature_names)

    def load_quantile_boosters(self, public_key: Ed25519PublicKey) -> tuple[xgb.Booster, ...]:
        """Verify, then load the quantile boosters, one per target (none when there is no band)."""
        self.verify(public_key)
        return tuple(_load(q, self.metadata.feature_names) for q in self.quantile_boosters)


def _sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def _load(blob: bytes, feature_names: tuple[str, ...]) -> xgb.Booster:
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(blob))
    except xgb.core.XGBoostError as exc:
        raise ArtifactFormatError(f"signed booster cannot be loaded: {exc}") from exc
    if tuple(booster.feature_names or ()) != feature_names:
        raise ArtifactFormatError("booster feature names differ from the signed metadata")
    return booster


def _field(view: memoryview, pos: int, fmt: str, limit: int, what: str) -> tuple[bytes, int]:
    size = struct.calcsize(fmt)
    if pos + size > len(view):
        raise ArtifactFormatError(f"truncated before {what} length")
    (length,) = struct.unpack(fmt, view[pos : pos + size])
    pos += size
    if length > limit or pos + length > len(view):
        raise ArtifactFormatError(f"{what} length {length} exceeds the data or the limit")
    return bytes(view[pos : pos + length]), pos + length


def sign_artifact(
    booster: bytes,
    metadata: dict[str, Any],
    private_key: Ed25519PrivateKey,
    quantile_boosters: tuple[bytes, ...] = (),
) -> ModelArtifact:
    """Hash the boosters into the metadata, sign, and return the artifact."""
    if not isinstance(private_key, Ed25519PrivateKey):
        raise TypeError("signing needs an Ed25519 private key")
    fields = {k: v for k, v in metadata.items() if k not in ("sha256", "quantile_sha256")}  # computed here
    meta = ArtifactMetadata(
        **{"quantiles": (), "band_widening": (), "technology": {}, **fields},
        sha256=_sha256(booster),
        quantile_sha256=tuple(_sha256(q) for q in quantile_boosters),
    )
    raw = meta.to_json()
    # Round-trip so that what is signed is exactly what a verifier will parse.
    meta = ArtifactMetadata.from_json(raw)
    return ModelArtifact(meta, bytes(booster), private_key.sign(_DOMAIN + raw), raw, tuple(quantile_boosters))
