"""A real node in the test's folder, with members who consume and one who generates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from coopfed.node.model import ConsentSettings
from coopfed.node.runtime import Node, init_node, open_node
from coopfed.node.settings import load_settings

T0 = 1704067200  # 2024-01-01T00:00:00Z, midnight in London too
DAY = 86_400
PERIODS = T0 + 1800 * np.arange(48, dtype=np.int64)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    config = init_node(tmp_path / "coop", node_id="coop", name="Test Co-op", listen="127.0.0.1:0")
    with open_node(load_settings(config, environ={"COOPFED_STORAGE__SYNCHRONOUS": "NORMAL"})) as opened:
        yield opened


def add_member(
    node: Node, member_id: str, demand: float, generation: float = 0.0, export: float = 0.0
) -> None:
    """A member with flat readings for the day of T0."""
    node.store.create_member(member_id, member_id, ConsentSettings(), admitted_by="test")
    flat = {"demand": demand, "generation": generation, "export": export}
    node.store.put_readings(member_id, [(k, PERIODS, np.full(PERIODS.size, v)) for k, v in flat.items()])
