"""The default policies coopfed ships, and a co-op's own copy of them for its board to change."""

from __future__ import annotations

import json
import shutil
import tempfile
from importlib.resources import files
from pathlib import Path

from coopfed.node.policy.errors import PolicyError
from coopfed.node.policy.loader import load_policies

# Python files make the defaults an importable package; they are no part of a co-op's policies.
_NOT_POLICY = shutil.ignore_patterns("__init__.py", "__pycache__", "*.pyc")


def default_policies() -> Path:
    """The packaged default policy folder: Rego modules, their `*_test.rego` suites, `data.json`."""
    folder = files("coopfed.policies")
    if not isinstance(folder, Path):  # only a zip import would give something else
        raise PolicyError(f"the default policies are not a folder on disk ({folder})")
    return folder


def write_coop_policies(target: Path, *, coop_id: str, name: str, source: Path | None = None) -> Path:
    """Copy `source` (default: the packaged policies) to the new folder `target`, naming the co-op.

    `data.json` at the top gets `coop.id` and `coop.name`; everything else is copied as it is.
    The copy appears whole or not at all.
    """
    source = default_policies() if source is None else source
    load_policies(source)  # refuse a folder that is not a policy set before writing anything
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as tmp:
        copy = Path(tmp) / target.name
        shutil.copytree(source, copy, ignore=_NOT_POLICY)
        _name_coop(copy / "data.json", coop_id, name)
        copy.rename(target)  # fails if target appeared meanwhile: nothing is overwritten
    return target


def _name_coop(data_file: Path, coop_id: str, name: str) -> None:
    if not data_file.exists():
        return
    data = json.loads(data_file.read_text(encoding="utf-8"))
    if not isinstance(data.get("coop"), dict):
        return
    data["coop"].update(id=coop_id, name=name)
    data_file.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
