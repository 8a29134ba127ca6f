"""The node serves the portal on its own port from its event loop, and stops it with itself."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest

from coopfed.node.runtime import Node
from coopfed.node.server import NodeServer

pytestmark = pytest.mark.integration


def test_the_node_serves_the_portal_where_settings_say(node: Node) -> None:
    node.settings = replace(node.settings, portal=replace(node.settings.portal, listen="127.0.0.1:0"))

    async def run() -> tuple[int, str, str]:
        server = NodeServer(node)
        await server.start()
        try:
            assert server.portal is not None
            async with httpx.AsyncClient(base_url=server.portal.url) as http:
                page = await http.get("/signin")
        finally:
            await server.stop(1)
        return page.status_code, page.headers["content-security-policy"], server.portal.url

    status, csp, url = asyncio.run(run())
    assert status == 200
    assert "frame-ancestors 'none'" in csp
    assert url.startswith("http://127.0.0.1:")
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/signin")  # stopped with the node
