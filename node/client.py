"""Client side helpers: channels to a node (TLS, or plaintext to loopback only) and saved credentials."""

from __future__ import annotations

import argparse
import json
import os
import ssl
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import grpc

from coopfed.federation.tls import cert_fingerprint, cert_node_id, channel_options, is_loopback
from coopfed.node.errors import Unavailable, UsageError

CONNECT_TIMEOUT = 10.0


def add_node_options(parser: argparse.ArgumentParser, *, default: str | None = "127.0.0.1:50051") -> None:
    """--node, and how to trust it over TLS: --ca FILE or --fingerprint of its certificate."""
    parser.add_argument("--node", default=default, help="the node's host:port")
    parser.add_argument("--ca", type=Path, default=None, help="the node's certificate (or its CA) to trust")
    parser.add_argument(
        "--fingerprint",
        default="",
        help="SHA-256 fingerprint of the node's certificate (as `node status` shows)",
    )


def channel(address: str, *, ca: Path | None = None, fingerprint: str = "") -> grpc.Channel:
    """A blocking channel: TLS trusting `ca` or the certificate with `fingerprint`, else plaintext.

    Plaintext is only allowed to this machine: a member's token must never cross a network in clear."""
    if ca is not None:
        return grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca.read_bytes()))
    if fingerprint:
        pem = pinned_certificate(address, fingerprint)
        roots = grpc.ssl_channel_credentials(root_certificates=pem)
        # The pin is stronger than a name: check the certificate names its node, whatever was dialled.
        return grpc.secure_channel(address, roots, options=channel_options(cert_node_id(pem)))
    if not is_loopback(address):
        raise UsageError(
            f"{address} is not on this machine: connect over TLS with --ca FILE or --fingerprint SHA256",
            code="cli.plaintext",
        )
    return grpc.insecure_channel(address)


def pinned_certificate(address: str, fingerprint: str) -> bytes:
    """The node's certificate, fetched and accepted only if its SHA-256 fingerprint is `fingerprint`."""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise UsageError(f"{address}: expected host:port", code="cli.address")
    try:
        pem = ssl.get_server_certificate((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).encode()
    except OSError as exc:
        raise Unavailable(f"cannot reach the node at {address}: {exc}", code="cli.unreachable") from exc
    if _normalised(cert_fingerprint(pem)) != _normalised(fingerprint):
        raise Unavailable(
            f"the node at {address} has certificate {cert_fingerprint(pem)}, not the fingerprint given",
            code="cli.fingerprint",
        )
    return pem


def _normalised(fingerprint: str) -> str:
    return fingerprint.upper().removeprefix("SHA256:").replace(":", "").strip()


def every_page(
    call: Any, request: Any, items: str, *, limit: int | None = None, **kwargs: Any
) -> tuple[list, Any]:
    """The `items` of every page of a List RPC (the first `limit` of them), and the last reply,
    for the reply's other fields. `kwargs` go to each call (metadata, timeout)."""
    found: list = []
    if limit is not None:
        request.page_size = limit
    while True:
        reply = call(request, **kwargs)
        found.extend(getattr(reply, items))
        if not reply.next_page_token or (limit is not None and len(found) >= limit):
            return found[:limit], reply
        request.page_token = reply.next_page_token


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def grant_bearer(grant: str, organisation_token: str) -> tuple[tuple[str, str], ...]:
    """FetchData's credentials: the grant, and the token of the organisation it was issued to."""
    from coopfed.node.auth import HOLDER_HEADER

    return (*bearer(grant), (HOLDER_HEADER, organisation_token))


@dataclass(frozen=True)
class Credentials:
    """What `member register`, `org register` or `review token` saves for later commands (mode 0600)."""

    node: str
    subject: str  # the member id, organisation id or board name the token was issued to
    token: str
    ca: str = ""  # how to trust the node over TLS, as given when the credential was saved
    fingerprint: str = ""

    def channel(self) -> grpc.Channel:
        return channel(self.node, ca=Path(self.ca) if self.ca else None, fingerprint=self.fingerprint)

    def save(self, path: Path, *, force: bool = False) -> None:
        """Write the credential; an existing one is kept unless `force` (it may be the only copy)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            raise UsageError(
                f"{path} already holds a credential: keep it, or choose another file (--credentials), "
                "or replace it with --force",
                code="cli.credentials_exist",
            ) from None
        os.fchmod(fd, 0o600)  # a replaced file keeps no looser mode it had
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(self), out, indent=2)

    def replace_token(self, path: Path, token: str) -> Credentials:
        """Save the same credential with a fresh token, replacing the file whole (mode 0600): the
        old token was revoked, so a half-written file would lock its owner out."""
        from coopfed.federation.keys import open_private

        renewed = replace(self, token=token)
        with open_private(path) as out:
            json.dump(asdict(renewed), out, indent=2)
        return renewed

    @classmethod
    def load(cls, path: Path, hint: str) -> Credentials:
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise UsageError(f"no credentials in {path}: {hint}", code="cli.credentials") from None
        except (OSError, ValueError, TypeError) as exc:
            raise UsageError(f"cannot read credentials from {path}: {hint}", code="cli.credentials") from exc
