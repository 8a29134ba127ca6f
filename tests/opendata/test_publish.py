"""Open data (flow 5): a valid Frictionless package, only consenting members, cells under k
withheld, the publication in the decision log and in every contributor's access log."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import frictionless
import numpy as np
import pytest

from coopfed.node.model import HALF_HOUR, ConsentLevel, ConsentSettings, Flow
from coopfed.node.opendata.publish import PATH
from coopfed.node.runtime import Node, init_node, open_node
from coopfed.node.services import publisher_of
from coopfed.node.settings import load_settings

POLICIES = Path(__file__).resolve().parents[2] / "policies"
START = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp())
DAY = START + np.arange(48, dtype=np.int64) * HALF_HOUR
AMBER_OPEN = ConsentSettings(level=ConsentLevel.AMBER, choices={"demand": frozenset({Flow.OPEN_DATA})})


def _join(node: Node, member: str, settings: ConsentSettings, periods: np.ndarray, kwh: float) -> None:
    node.store.create_member(member, member.upper(), settings, admitted_by="test")
    node.store.put_readings(
        member, [(ds, periods, np.full(periods.size, kwh)) for ds in ("demand", "generation")]
    )


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    folder = tmp_path_factory.mktemp("open")
    config = init_node(folder, node_id="coop-b", name="B", listen="127.0.0.1:0", policies=POLICIES)
    with open_node(load_settings(config, environ={"COOPFED_STORAGE__SYNCHRONOUS": "NORMAL"})) as node:
        for i in range(8):  # green, the whole day
            _join(node, f"g{i}", ConsentSettings(level=ConsentLevel.GREEN), DAY, 1.0)
        for i in range(2):  # green, the morning only: afternoon has 8 contributors, fewer than k = 10
            _join(node, f"m{i}", ConsentSettings(level=ConsentLevel.GREEN), DAY[:24], 1.0)
        for i in range(3):  # red: never published, whatever they hold
            _join(node, f"r{i}", ConsentSettings(level=ConsentLevel.RED), DAY, 50.0)
        _join(node, "a0", AMBER_OPEN, DAY, 2.0)  # demand only
        yield node


@pytest.fixture(scope="module")
def published(node: Node, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("package")
    return publisher_of(node).publish(out, (START, START + 86400)), out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_the_package_is_valid_frictionless_with_its_licence_and_policy_revision(
    node: Node, published
) -> None:
    pub, out = published
    report = frictionless.validate(str(out / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    meta = json.loads((out / "datapackage.json").read_text())
    assert meta["licenses"][0]["name"] == "CC-BY-4.0"
    assert meta["coopfed"]["policy_revision"] == node.policy.revision
    assert meta["coopfed"]["decision_id"] == pub.decision_id
    assert meta["coopfed"]["k"] == 10
    assert {r["name"] for r in meta["resources"]} == {"demand", "generation", "export"}
    assert meta["sources"]
    assert meta["contributors"]


def test_only_consenting_members_count_and_cells_under_k_are_left_out(published) -> None:
    pub, out = published
    demand = _rows(out / "demand.csv")
    assert [r["members"] for r in demand] == ["11"] * 24  # the afternoon's 9 are fewer than k = 10
    assert float(demand[0]["kwh"]) == pytest.approx(10 * 1.0 + 2.0)  # red members' 50 kWh never counted
    generation = _rows(out / "generation.csv")  # amber chose demand only: 10 in the morning
    assert [r["members"] for r in generation] == ["10"] * 24
    assert _rows(out / "export.csv") == []  # nobody holds export readings
    assert pub.cells_suppressed == 24 + 24
    assert pub.contributors == 11


def test_parquet_beside_each_csv_holds_the_same_cells(published) -> None:
    import pyarrow.parquet as pq

    pub, out = published
    assert pub.parquet
    for name in ("demand", "generation", "export"):
        table = pq.read_table(out / f"{name}.parquet").to_pydict()
        rows = _rows(out / f"{name}.csv")
        assert [str(n) for n in table["members"]] == [r["members"] for r in rows]
        assert [f"{k:.4f}" for k in table["kwh"]] == [r["kwh"] for r in rows]


def test_the_publication_is_in_the_decision_log_and_every_contributors_access_log(
    node: Node, published
) -> None:
    pub, _ = published
    logged = json.loads(node.governance.decision_entry(pub.decision_id))
    assert logged["path"] == PATH
    assert logged["input"]["licence"] == "CC-BY-4.0"
    for member, datasets in [
        ("g0", ["demand", "generation"]),
        ("m1", ["demand", "generation"]),
        ("a0", ["demand"]),
    ]:
        entries = [e for e in node.governance.access_for_member(member) if e.release_id == pub.decision_id]
        assert sorted(e.dataset for e in entries) == datasets
        assert {(e.flow, e.organisation_id, e.grant_id) for e in entries} == {
            ("open_data", "public", pub.publication_id)
        }
    assert all(e.flow != "open_data" for e in node.governance.access_for_member("r0"))
