"""`coopfed opendata publish` on a node's folder: a valid package, plain words, clean refusals."""

from __future__ import annotations

import json
from pathlib import Path

import frictionless
import pytest

from coopfed.node import cli
from coopfed.node.model import ConsentLevel, ConsentSettings
from coopfed.node.runtime import init_node, open_node
from coopfed.node.settings import load_settings

from .test_publish import DAY, POLICIES, _join


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return init_node(tmp_path / "node", node_id="coop-b", name="B", listen="127.0.0.1:0", policies=POLICIES)


def test_publish_writes_a_valid_package_and_says_what_it_did(config: Path, tmp_path: Path, capsys) -> None:
    with open_node(load_settings(config)) as node:
        for i in range(12):
            _join(node, f"g{i}", ConsentSettings(level=ConsentLevel.GREEN), DAY, 1.0)
    out = tmp_path / "package"
    args = ["opendata", "publish", "--config", str(config), "--out", str(out)]
    assert cli.main([*args, "--from", "2026-03-02", "--to", "2026-03-03"]) == 0
    text = capsys.readouterr().out
    assert "half-hours published:" in text
    assert "2 Mar 2026 to 2 Mar 2026" in text
    assert frictionless.validate(str(out / "datapackage.json")).valid
    assert cli.main([*args, "--json"]) == 0  # the default period: the last four weeks held
    done = json.loads(capsys.readouterr().out)
    assert done["cells_released"] == 3 * 48 - 48  # demand and generation; nobody holds export
    assert done["contributors"] == 12


def test_nothing_to_publish_is_a_clean_refusal(config: Path, tmp_path: Path, capsys) -> None:
    code = cli.main(["opendata", "publish", "--config", str(config), "--out", str(tmp_path / "p")])
    out = capsys.readouterr().out
    assert code == 1
    assert "no readings yet" in out
    assert "Traceback" not in out
    assert not (tmp_path / "p").exists()
    assert (
        cli.main(["opendata", "publish", "--config", str(config), "--out", "x", "--from", "2026-03-02"]) == 2
    )
