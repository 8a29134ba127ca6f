"""The portal's HTTP server (uvicorn) on the node's event loop, started and stopped with the node."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import uvicorn

from coopfed.node.errors import FailedPrecondition
from coopfed.node.portal.app import create_app
from coopfed.node.runtime import Node

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    from coopfed.node.server import is_loopback as loopback

    return loopback(f"{host}:0")


class PortalServer:
    """Serves the portal where [portal] listen says; `url` is where members reach it."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        settings = self.node.settings
        host, _, port = settings.portal.listen.rpartition(":")
        host = host.strip("[]")
        secure = not is_loopback(host)
        tls = {}
        if secure:
            tls = {
                "ssl_certfile": str(settings.path(settings.tls.cert)),
                "ssl_keyfile": str(settings.path(settings.tls.key)),
            }
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
        except (OSError, ValueError) as exc:
            sock.close()
            raise FailedPrecondition(
                f"the portal cannot listen on {settings.portal.listen}: {exc}", code="config.portal_listen"
            ) from exc
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = settings.portal.public_url or f"{'https' if secure else 'http'}://{shown}:{bound}"
        app = create_app(self.node, secure=secure, origin=self.url)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", **tls)  # type: ignore[arg-type]
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="portal")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it stopped
            await asyncio.sleep(0.01)
        log.info("portal on %s", self.url)
        return self.url

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
