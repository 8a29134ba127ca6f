"""The node's composition root: what a serving node is made of, and who owns each lifetime.

`open_node` (runtime.py) builds the stores, the policy holder (with its reloader), the key
ring and the logs from Settings, and closes them in reverse; NodeServer (server.py) adds the
services, their interceptors and ports, and runs the node's background work (the policy reload
worker, scheduled open data, the forecast schedule, the admin socket's server) in its
`Background` TaskGroup.
`serve` puts them together for `coopfed node serve`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from coopfed.node.heap import tune_malloc
from coopfed.node.runtime import open_node
from coopfed.node.server import NodeServer
from coopfed.node.settings import Settings

log = logging.getLogger(__name__)


async def serve(settings: Settings, on_started: Callable[[int], None] | None = None) -> None:
    """Open the node, serve it until SIGTERM or SIGINT, then stop its servers and background
    work and close what was opened."""
    tune_malloc()
    with open_node(settings) as node:
        server = NodeServer(node)
        port = await server.start()
        if on_started:
            on_started(port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
        await server.stop()
