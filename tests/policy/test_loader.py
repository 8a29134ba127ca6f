"""Loading a policy directory: what is read, what is skipped, and how the revision is computed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coopfed.node.policy import PolicyError, PolicySet, load_policies
from coopfed.node.policy.loader import find_entrypoints

MODULE = "package demo\n\n# METADATA\n# entrypoint: true\nallow := true\n"


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_repository_policies_load(policy_set: PolicySet) -> None:
    assert "consent/consent.rego" in policy_set.modules
    assert not any(name.endswith("_test.rego") for name in policy_set.modules)
    assert "coopfed/consent/decision" in policy_set.entrypoints
    assert {"coop", "purposes", "flows", "datasets", "consent"} <= policy_set.data.keys()
    assert len(policy_set.revision) == 64


def test_revision_ignores_json_layout_but_not_content(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", {"p.rego": MODULE, "data.json": '{"x": 1, "y": [1, 2]}'})
    b = _write(tmp_path / "b", {"p.rego": MODULE, "data.json": '{\n  "y": [1, 2],\n  "x": 1\n}'})
    c = _write(tmp_path / "c", {"p.rego": MODULE, "data.json": '{"x": 2, "y": [1, 2]}'})
    d = _write(tmp_path / "d", {"p.rego": MODULE + "\n", "data.json": '{"x": 1, "y": [1, 2]}'})
    revisions = [load_policies(p).revision for p in (a, b, c, d)]
    assert revisions[0] == revisions[1]
    assert len(set(revisions)) == 3


def test_test_modules_do_not_change_the_revision(tmp_path: Path) -> None:
    root = _write(tmp_path, {"p.rego": MODULE})
    before = load_policies(root).revision
    _write(root, {"p_test.rego": "package demo_test\n\ntest_x if true\n"})
    assert load_policies(root).revision == before


def test_nested_data_lands_at_its_directory_path(tmp_path: Path) -> None:
    root = _write(
        tmp_path, {"p.rego": MODULE, "data.json": '{"a": 1}', "gov/data.json": json.dumps({"w": 2})}
    )
    assert load_policies(root).data == {"a": 1, "gov": {"w": 2}}


def test_data_defined_twice_is_refused(tmp_path: Path) -> None:
    root = _write(tmp_path, {"p.rego": MODULE, "data.json": '{"gov": {"w": 1}}', "gov/data.json": '{"w": 2}'})
    with pytest.raises(PolicyError, match="defined twice"):
        load_policies(root)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no Rego modules"),
        ({"p.rego": MODULE, "data.json": "[1, 2]"}, "must hold a JSON object"),
        ({"p.rego": MODULE, "data.json": "{not json"}, "cannot read policy data"),
    ],
)
def test_bad_directories_are_refused(tmp_path: Path, files: dict[str, str], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        load_policies(_write(tmp_path, files))


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        load_policies(tmp_path / "nope")


def test_entrypoints_come_from_metadata_annotations() -> None:
    source = (
        "# METADATA\n# title: pkg\npackage a.b\n\n"
        "# METADATA\n# title: x\n# entrypoint: true\nx := 1\n\n"
        "# METADATA\n# title: y, not an entrypoint\ny := 2\n\n"
        "z contains 1 if true\n"
    )
    assert find_entrypoints(source) == ["a/b/x"]
    assert find_entrypoints("no package here") == []
