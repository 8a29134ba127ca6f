"""The admin service: operator actions on a running node (policy reload, key rotation, status)
over a unix socket in the node's folder, never over the network.

The socket is mode 0600 in a folder of mode 0700: only the node's owner can open it, which is
the whole of its authentication. The CLI asks the node through it while the node runs, so a
reload or a rotation happens in the process that serves, and its answer comes back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from coopfed.node.errors import FailedPrecondition, Unavailable
from coopfed.node.rpc import rpc
from coopfed.v1 import admin_pb2, admin_pb2_grpc

if TYPE_CHECKING:
    from coopfed.federation.keys import KeyRing
    from coopfed.node.policy.holder import PolicyHolder
    from coopfed.node.policy.reload import ReloadOutcome

SOCKET_NAME = "admin.sock"
_MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with its terminating NUL
ADMIN_TIMEOUT_S = 120.0  # a reload compiles a bundle: it may take a while on a busy machine


def socket_path(folder: Path) -> Path:
    return folder / SOCKET_NAME


def _address(path: Path) -> str:
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        raise FailedPrecondition(
            f"the admin socket path {path} is longer than {_MAX_SOCKET_PATH} bytes, which unix sockets "
            "cannot use: move the node's folder to a shorter path",
            code="admin.socket_path",
        )
    return f"unix:{path}"


@dataclass
class Ports:
    """Where the node serves, filled in once its servers are bound."""

    public: int = 0
    peer: int = 0


class AdminService(admin_pb2_grpc.AdminServicer):
    def __init__(self, *, policy: PolicyHolder, keys: KeyRing, node_id: str, ports: Ports) -> None:
        self.policy, self.keys, self.node_id, self.ports = policy, keys, node_id, ports

    @rpc
    async def ReloadPolicy(
        self, request: admin_pb2.ReloadPolicyRequest, context: Any
    ) -> admin_pb2.ReloadOutcome:
        reloader = self.policy.reloader
        if reloader is None:
            raise FailedPrecondition(
                "this node runs its policies folder, not a signed bundle: there is nothing to reload; "
                "set bundle in the policy section and restart the node",
                code="admin.no_bundle",
            )
        return outcome_message(await asyncio.to_thread(reloader.reload, "admin"))

    @rpc
    async def RotateKey(
        self, request: admin_pb2.RotateKeyRequest, context: Any
    ) -> admin_pb2.RotateKeyResponse:
        key = await asyncio.to_thread(self.keys.rotate)
        return admin_pb2.RotateKeyResponse(kid=key.kid, kids=self.keys.kids)

    @rpc
    async def Status(self, request: admin_pb2.StatusRequest, context: Any) -> admin_pb2.StatusResponse:
        policy = self.policy
        outcomes = policy.reloader.outcomes if policy.reloader is not None else []
        return admin_pb2.StatusResponse(
            node_id=self.node_id,
            revision=policy.revision,
            policy_source=policy.source,
            last_reload=outcome_message(outcomes[-1]) if outcomes else None,
            pid=os.getpid(),
            port=self.ports.public,
            peer_port=self.ports.peer,
            active_kid=self.keys.signer.kid,
        )


def outcome_message(outcome: ReloadOutcome) -> admin_pb2.ReloadOutcome:
    return admin_pb2.ReloadOutcome(
        attempt=outcome.attempt,
        ok=outcome.ok,
        revision=outcome.revision,
        offered=outcome.offered,
        reason=outcome.reason,
        signers=list(outcome.signers),
        at=outcome.at,
    )


async def start_admin(folder: Path, service: AdminService) -> grpc.aio.Server:
    """Serve the admin service on the node folder's socket (the caller holds the folder's lock,
    so a socket file found there is a stale one of a node that died, and is replaced)."""
    path = socket_path(folder)
    address = _address(path)
    path.unlink(missing_ok=True)
    server = grpc.aio.server()
    admin_pb2_grpc.add_AdminServicer_to_server(service, server)
    server.add_insecure_port(address)
    await server.start()
    os.chmod(path, 0o600)  # the folder (0700) already keeps others out; the socket does too
    return server


async def stop_admin(server: grpc.aio.Server, folder: Path) -> None:
    await server.stop(0)
    with contextlib.suppress(OSError):  # a disk gone read-only: the next start replaces the stale socket
        socket_path(folder).unlink(missing_ok=True)


def admin_stub(folder: Path) -> tuple[grpc.Channel, Any]:
    """A channel and stub to the admin service of the node serving `folder`; Unavailable, in
    plain words, when no node is running there."""
    path = socket_path(folder)
    if not path.exists():
        raise not_running(folder)
    channel = grpc.insecure_channel(_address(path))
    return channel, admin_pb2_grpc.AdminStub(channel)


def ask(folder: Path, method: str, request: Any, timeout: float = ADMIN_TIMEOUT_S) -> Any:
    """Call one admin RPC on the node serving `folder`."""
    channel, stub = admin_stub(folder)
    with channel:
        try:
            return getattr(stub, method)(request, timeout=timeout)
        except grpc.RpcError as exc:
            if exc.code() is grpc.StatusCode.UNAVAILABLE:  # a socket left by a node that died
                raise not_running(folder) from exc
            raise


def not_running(folder: Path) -> Unavailable:
    return Unavailable(
        f"no node is running in {folder}: start it with `coopfed node serve --config "
        f"{folder / 'coopfed.toml'}` (the admin socket {SOCKET_NAME} is there only while it runs)",
        code="admin.not_running",
    )
