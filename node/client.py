"""Client side helpers: channels to a node and the member's saved credentials."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc

from coopfed.node.errors import InvalidArgument


def channel(address: str, ca_cert: Path | None = None) -> grpc.Channel:
    """A blocking channel: TLS when a CA or pinned certificate is given, else plaintext (loopback)."""
    if ca_cert is None:
        return grpc.insecure_channel(address)
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca_cert.read_bytes()))


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@dataclass(frozen=True)
class Credentials:
    """What `member register`, `org register` or `review token` saves for later commands (mode 0600)."""

    node: str
    subject: str  # the member id, organisation id or board name the token was issued to
    token: str

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(self), out, indent=2)

    @classmethod
    def load(cls, path: Path, hint: str) -> Credentials:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise InvalidArgument(
                f"cannot read credentials from {path}: {hint}", code="cli.credentials"
            ) from exc
