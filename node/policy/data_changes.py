"""Changes to ballot-governed policy data: JSON merge patches, what they touch, and the rule a
node applies to a signed bundle (every change to governed data must be a passed ballot's).

Governed data is named by JSON pointers in the policy data's own `ballots.governed` list; a
pointer covers everything below it. `ballots` itself is governed, so the rules of voting and the
list of what members decide can be changed only by a ballot too.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from coopfed.federation.canonical import canonical_json

MISSING = object()

# What the governed data means, for members reading a proposal (a pointer not named here is shown
# as it is written).
WORDS = {
    "/coop/k_min": "the smallest group of homes whose data leaves the co-op",
    "/open_data/k_min": "the smallest group of homes in published open data",
    "/open_data/licence": "the open-data licence",
    "/governance/thresholds/approve": "the score at which a data request is approved",
    "/governance/thresholds/reject": "the score below which a data request is refused",
    "/governance/stage_weights": "how much who asks and why they ask count in a request's score",
    "/governance/organisation": "how the organisation asking is judged",
    "/governance/purpose": "how the purpose of a request is judged",
    "/consent/personas": "the consent personas",
    "/ledger/key": "how local energy is shared out",
    "/ledger/prices_pence_per_kwh": "the prices of energy, in pence per kWh",
    "/ballots": "the rules of ballots",
}


def describe(old: Any, new: Any, pointers: Iterable[str]) -> list[dict[str, Any]]:
    """Each changed pointer with its meaning in words, the value before and the value after."""
    out = []
    for pointer in pointers:
        named = max((p for p in WORDS if pointer == p or pointer.startswith(p + "/")), key=len, default="")
        rest = pointer[len(named) :].strip("/").replace("/", " ")
        what = f"{WORDS[named]}{f' ({rest})' if rest else ''}" if named else pointer
        before, after = resolve(old, pointer), resolve(new, pointer)
        out.append({
            "pointer": pointer, "what": what,
            "before": "nothing" if before is MISSING else canonical(before),
            "after": "nothing (removed)" if after is MISSING else canonical(after),
        })  # fmt: skip
    return out


def canonical(value: Any) -> str:
    return canonical_json(value).decode("utf-8")


def digest(value: Any) -> str:
    """SHA-256 (hex) of a JSON value's canonical text (RFC 8785): a tally's or a change's fingerprint."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge, null removes a member, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def changed_pointers(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The JSON pointers at which `new` differs from `old`, as deep as both are objects."""
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[str] = []
        for key in sorted(old.keys() | new.keys()):
            a, b = old.get(key, MISSING), new.get(key, MISSING)
            if a is MISSING or b is MISSING:
                if a is not b:
                    found.append(f"{prefix}/{_escape(key)}")
            else:
                found += changed_pointers(a, b, f"{prefix}/{_escape(key)}")
        return found
    return [] if old == new and type(old) is type(new) else [prefix or "/"]


def patched_pointers(patch: Any, prefix: str = "") -> list[str]:
    """The pointers a merge patch sets or removes: its leaves, where a value is not an object."""
    if not isinstance(patch, dict) or not patch:
        return [prefix or "/"]
    return [
        p for key, value in sorted(patch.items()) for p in patched_pointers(value, f"{prefix}/{_escape(key)}")
    ]


def governed_paths(*datas: Mapping[str, Any]) -> tuple[str, ...]:
    """The pointers members decide, from every given revision's `ballots.governed`."""
    found: set[str] = set()
    for data in datas:
        listed = data.get("ballots", {}).get("governed", []) if isinstance(data.get("ballots"), dict) else []
        found.update(p for p in listed if isinstance(p, str) and p.startswith("/"))
    return tuple(sorted(found))


def is_governed(pointer: str, governed: Iterable[str]) -> bool:
    return any(pointer == g or pointer.startswith(g + "/") for g in governed)


def governed_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The changed pointers that lie in governed data (the rules of either side count) or above it
    (replacing a whole section that holds governed data changes that data too)."""
    governed = governed_paths(old, new)
    return [
        p
        for p in changed_pointers(old, new)
        if is_governed(p, governed) or any(g.startswith(p + "/") or p == "/" for g in governed)
    ]


def ungoverned_changes(old: Mapping[str, Any], patch: Mapping[str, Any]) -> list[str]:
    """What a proposal's patch changes outside governed data (a proposal may change none of it)."""
    governed = governed_paths(old)
    return [p for p in changed_pointers(old, merge_patch(old, patch)) if not is_governed(p, governed)]


def type_changes(old: Mapping[str, Any], patch: Mapping[str, Any]) -> list[str]:
    """Pointers where the patch puts a value of another kind (a number where a number was not)."""
    new = merge_patch(old, patch)
    found = []
    for pointer in changed_pointers(old, new):
        a, b = resolve(old, pointer), resolve(new, pointer)
        if a is not MISSING and b is not MISSING and _kind(a) != _kind(b):
            found.append(pointer)
    return found


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "number"
    kinds: dict[type, str] = {str: "text", list: "list", dict: "object"}
    return kinds.get(type(value), "nothing")


def resolve(data: Any, pointer: str) -> Any:
    """The value at a JSON pointer, or MISSING."""
    node = data
    for part in pointer.split("/")[1:]:
        key = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or key not in node:
            return MISSING
        node = node[key]
    return node


def unexplained(
    old: Mapping[str, Any], new: Mapping[str, Any], patches: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The governed pointers where `new` is not `old` with `patches` applied in order: the changes
    to governed data that no named ballot made. Empty where the bundle may run."""
    expected: Any = dict(old)
    for patch in patches:
        expected = merge_patch(expected, patch)
    governed = governed_paths(old, new, expected)
    wrong = changed_pointers(expected, new)
    return [p for p in wrong if is_governed(p, governed) or any(g.startswith(p + "/") for g in governed)]
