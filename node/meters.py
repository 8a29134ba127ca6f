"""Meter ids as keyed hashes: the node's meter key (0600 in its folder) and HMAC-SHA256 under it.

A plain hash of an MPAN could be reversed by hashing every MPAN; a keyed one cannot without the key.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import secrets
from pathlib import Path

from coopfed.federation.atomic import write_atomic
from coopfed.node.errors import FailedPrecondition, InvalidArgument
from coopfed.node.limits import limit_of

KEY_NAME = "meter.key"
_KEY_BYTES = 32
_MAX_METER_ID = limit_of("meter_id")


def ensure_key(folder: Path) -> Path:
    """Create the node's meter key if it has none (at init, or at the first start of an older node)."""
    path = folder / KEY_NAME
    if path.exists():
        return path
    with contextlib.suppress(FileExistsError):  # never replaces a key another process made meanwhile
        write_atomic(path, secrets.token_bytes(_KEY_BYTES), 0o600, exclusive=True)
    return path


@functools.cache
def _key(folder: Path) -> bytes:
    path = ensure_key(folder)
    if path.stat().st_mode & 0o077:
        raise FailedPrecondition(
            f"{path} must be readable by its owner only (chmod 600)", code="meter.key_mode"
        )
    key = path.read_bytes()
    if len(key) != _KEY_BYTES:
        raise FailedPrecondition(f"{path} is not a meter key", code="meter.key")
    return key


def normal_meter_id(meter_id: str) -> str:
    """The meter id with spaces and case ignored ("" for none); InvalidArgument if it cannot be one."""
    normal = "".join(meter_id.split()).upper()
    if normal and (
        len(normal) > _MAX_METER_ID or not normal.isascii() or not normal.replace("-", "").isalnum()
    ):
        raise InvalidArgument(
            f"meter_id: letters, digits and '-', up to {_MAX_METER_ID} (an MPAN or a meter serial)",
            code="member.meter_id",
            field="meter_id",
        )
    return normal


def meter_hash(folder: Path, meter_id: str) -> bytes | None:
    """The keyed hash of a meter id (spaces and case ignored); None when no meter is given."""
    normal = normal_meter_id(meter_id)
    if not normal:
        return None
    return hmac.new(_key(folder), normal.encode(), hashlib.sha256).digest()
