"""Load a directory of Rego modules and data.json files into one immutable, hashed policy set."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coopfed.federation.canonical import canonical_json, legacy_json
from coopfed.node.policy.errors import PolicyError

_PACKAGE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_RULE_HEAD = re.compile(r"^(?:default\s+)?([A-Za-z_]\w*)")  # `default allow := false` names allow


@dataclass(frozen=True)
class PolicySet:
    """Rego modules (by path relative to the policy directory), merged data, content hash.

    `revision` is the sha256 of the canonical JSON (RFC 8785) of modules and data, so two nodes
    with the same policies report the same revision whatever the file order or whitespace in JSON.
    """

    modules: dict[str, str]
    data: dict[str, Any]
    revision: str
    entrypoints: tuple[str, ...] = field(default=())


def load_policies(directory: str | Path) -> PolicySet:
    """Read `*.rego` (but not `*_test.rego`) and `data.json` files below `directory`.

    As in OPA's directory loading, `a/b/data.json` lands at `data.a.b`.
    """
    root = Path(directory)
    if not root.is_dir():
        raise PolicyError(f"policy directory {root} does not exist")
    modules = {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(root.rglob("*.rego"))
        if not p.name.endswith("_test.rego")
    }
    if not modules:
        raise PolicyError(f"no Rego modules in {root}")
    data: dict[str, Any] = {}
    for path in sorted(root.rglob("data.json")):
        prefix = path.parent.relative_to(root).parts
        _merge(data, prefix, _read_json(path))
    return make_policy_set(modules, data)


def make_policy_set(modules: dict[str, str], data: dict[str, Any]) -> PolicySet:
    """Build a policy set from modules and data already in memory."""
    try:
        revision = hashlib.sha256(canonical_json({"modules": modules, "data": data})).hexdigest()
    except ValueError as exc:
        raise PolicyError(f"policy data holds a value JSON cannot carry: {exc}") from exc
    entrypoints = tuple(sorted({e for src in modules.values() for e in find_entrypoints(src)}))
    return PolicySet(modules, data, revision, entrypoints)


def legacy_revision(policies: PolicySet) -> str:
    """The revision bundles built before RFC 8785 state: the same except where data holds floats."""
    return hashlib.sha256(legacy_json({"modules": policies.modules, "data": policies.data})).hexdigest()


def find_entrypoints(source: str) -> list[str]:
    """Paths ("pkg/path/rule") of rules annotated `entrypoint: true` in a `# METADATA` block."""
    match = _PACKAGE.search(source)
    if match is None:
        return []
    package = match.group(1).replace(".", "/")
    found: list[str] = []
    lines = source.splitlines()
    for i, line in enumerate(lines):
        if line.strip() != "# METADATA":
            continue
        j = i + 1
        block: list[str] = []
        while j < len(lines) and lines[j].lstrip().startswith("#"):
            block.append(lines[j].lstrip("# \t").strip())
            j += 1
        if "entrypoint: true" not in block:
            continue
        head = _RULE_HEAD.match(lines[j]) if j < len(lines) else None
        if head and head.group(1) != "package":
            found.append(f"{package}/{head.group(1)}")
        elif head:  # a package-scoped entrypoint: the whole package document
            found.append(package)
    return found


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PolicyError(f"cannot read policy data {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise PolicyError(f"policy data {path} must hold a JSON object")
    return value


def _merge(data: dict[str, Any], prefix: tuple[str, ...], value: dict[str, Any]) -> None:
    node = data
    for key in prefix:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise PolicyError(f"policy data at {'/'.join(prefix)} overlaps a value")
    for key, item in value.items():
        if key in node:
            raise PolicyError(f"policy data key {'/'.join((*prefix, key))} is defined twice")
        node[key] = item
