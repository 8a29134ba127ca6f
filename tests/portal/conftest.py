"""A real node (folder, SQLite, embedded policy engine) with the portal app in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from coopfed.node.portal.app import create_app
from coopfed.node.runtime import Node, init_node, open_node
from coopfed.node.server import portal_parts
from coopfed.node.settings import load_settings


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    config = init_node(tmp_path / "coop", node_id="coop", name="Riverside Energy Co-op", listen="127.0.0.1:0")
    settings = load_settings(config)
    settings = replace(settings, policy=replace(settings.policy, engine="embedded", watch=False))
    with open_node(settings) as opened:
        yield opened


@pytest.fixture
def client(node: Node) -> Iterator[TestClient]:
    with TestClient(
        create_app(portal_parts(node), secure=False, origin="http://localhost"), base_url="http://localhost"
    ) as c:
        yield c
