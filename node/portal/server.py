"""The portal's HTTP server (uvicorn) on the node's event loop, started and stopped with the node."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import uvicorn

from coopfed.federation.tls import is_loopback
from coopfed.node.errors import FailedPrecondition
from coopfed.node.portal.parts import PortalParts

log = logging.getLogger(__name__)


class PortalServer:
    """Serves the portal where [portal] listen says; `url` is where members reach it."""

    def __init__(self, parts: PortalParts, listen: str = "") -> None:
        self.parts = parts
        self.listen = listen or parts.settings.portal.listen
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        settings = self.parts.settings
        host, _, port = self.listen.rpartition(":")
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
                f"the portal cannot listen on {self.listen}: {exc}", code="config.portal_listen"
            ) from exc
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = settings.portal.public_url or f"{'https' if secure else 'http'}://{shown}:{bound}"
        from coopfed.node.portal.app import create_app  # starlette and uvicorn load only when used

        app = create_app(self.parts, secure=secure, origin=self.url)
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


DEMO_PASSWORD = "riverside-demo"


async def demo_portal(
    parts: PortalParts, member_id: str, listen: str = "127.0.0.1:8080"
) -> tuple[PortalServer, str]:
    """The demo's portal, with a sign-in for one of its members (also on the board); returns the
    server and the lines to print. Port 8080 taken: any free port."""
    from coopfed.node.portal.accounts import Accounts, hash_password

    accounts = Accounts(parts.store)
    await asyncio.to_thread(
        accounts.add, member_id, "demo@riverside.example", hash_password(DEMO_PASSWORD), "board"
    )
    server = PortalServer(parts, listen)
    try:
        url = await server.start()
    except FailedPrecondition:
        server = PortalServer(parts, listen.rsplit(":", 1)[0] + ":0")
        url = await server.start()
    return server, f"members' portal: {url}  (sign in as demo@riverside.example, password {DEMO_PASSWORD})"
