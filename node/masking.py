"""Decision-log masking, as OPA's decision-log masks: fields erased, digested or pseudonymised."""

from __future__ import annotations

import copy
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from coopfed.federation.canonical import canonical_json as canonical
from coopfed.federation.keys import read_private, write_private

PSEUDONYM_KEY_FILE = "pseudonym.key"


@dataclass(frozen=True)
class MaskRules:
    """JSON pointers (`/input/a/b`, `*` for any key or element) to erase, digest or pseudonymise.

    erase: the value is removed (listed in the entry's `erased`, as OPA does).
    digest: replaced by `sha256:<hex>` of its canonical JSON, so a copy can be checked
        against the log without the log disclosing it (listed in `masked`).
    pseudonymise: replaced by a keyed pseudonym (HMAC-SHA256 with the node's key), so equal
        identifiers stay equal in the log and only the co-op can link them (listed in `masked`).
    """

    erase: tuple[str, ...] = ()
    digest: tuple[str, ...] = ()
    pseudonymise: tuple[str, ...] = ()

    @classmethod
    def from_policy_data(cls, data: Mapping[str, Any]) -> MaskRules:
        rules = data.get("governance", {}).get("decision_log", {})
        return cls(*(tuple(rules.get(name, ())) for name in ("erase", "digest", "pseudonymise")))

    @classmethod
    def union(cls, many: Iterable[MaskRules]) -> MaskRules:
        """Every pointer any of `many` masks, each kept by its strongest action."""
        many = list(many)
        erase = tuple(dict.fromkeys(p for r in many for p in r.erase))
        digest = tuple(dict.fromkeys(p for r in many for p in r.digest if p not in erase))
        taken = {*erase, *digest}
        pseudonymise = tuple(dict.fromkeys(p for r in many for p in r.pseudonymise if p not in taken))
        return cls(erase, digest, pseudonymise)


def _split(pointer: str) -> list[str]:
    if not pointer.startswith("/"):
        raise ValueError(f"not a JSON pointer: {pointer!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]


def _visit(node: Any, parts: Sequence[str], path: str, act: Callable[[Any, Any, str], None]) -> None:
    """Call act(container, key, pointer) for every match of `parts` below `node`."""
    head, rest = parts[0], parts[1:]
    keys: list[Any]
    if isinstance(node, dict):
        keys = list(node) if head == "*" else [head] if head in node else []
    elif isinstance(node, list):
        # Last element first: erasing one must not shift the elements still to be visited.
        keys = list(reversed(range(len(node)))) if head == "*" else [int(head)] if head.isdigit() else []
        keys = [k for k in keys if k < len(node)]
    else:
        return
    for key in keys:
        here = f"{path}/{key}"
        if rest:
            _visit(node[key], rest, here, act)
        else:
            act(node, key, here)


def load_or_create_key(keys_dir: Path) -> bytes:
    """The node's secret for pseudonyms: 32 random bytes, mode 0600, beside its signing keys."""
    path = Path(keys_dir) / PSEUDONYM_KEY_FILE
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(path, secrets.token_bytes(32))
    return read_private(path)


class PolicySource(Protocol):
    """What follows policy reloads (the node's PolicyHolder): the set in force, pinned or current."""

    @property
    def policies(self) -> Any: ...  # a PolicySet: .revision and .data


class Masker:
    """Applies mask rules to an event's `input` and `result` before it is logged.

    Given fixed MaskRules, every event is masked by them. Given a PolicySource, each event is
    masked by the rules of the revision that made it (its `revision`), parsed once per revision,
    so a board-signed change to what is masked applies from the next decision, without a restart.
    """

    KEEP = 8  # revisions whose rules are cached; older ones are dropped first

    def __init__(self, rules: MaskRules | PolicySource, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonym key must hold at least 16 bytes")
        self._fixed = rules if isinstance(rules, MaskRules) else None
        self._source = None if isinstance(rules, MaskRules) else rules
        self._by_revision: dict[str, MaskRules] = {}
        self._key = key
        if self._source is not None:
            self._current()  # the start-up revision's rules, read now as before

    def rules_for(self, revision: str) -> MaskRules:
        """The rules of `revision`; parsed from the policy data only when it is first seen."""
        if self._fixed is not None:
            return self._fixed
        rules = self._by_revision.get(revision)
        if rules is not None:
            return rules
        current, rules = self._current()
        if current == revision:
            return rules
        # The deciding revision was replaced before its decision reached the log and its data is
        # gone: mask by every rule still known, so a reload that narrowed masking exposes nothing.
        return MaskRules.union(list(self._by_revision.values()))

    def _current(self) -> tuple[str, MaskRules]:
        policies = self._source.policies  # type: ignore[union-attr]
        rules = self._by_revision.get(policies.revision)
        if rules is None:
            rules = MaskRules.from_policy_data(policies.data)
            if len(self._by_revision) >= self.KEEP:
                self._by_revision.pop(next(iter(self._by_revision)), None)
            self._by_revision[policies.revision] = rules
        return policies.revision, rules

    def derive(self, label: bytes) -> bytes:
        """A key for another use (e.g. per-grant member references), independent of this one."""
        return hmac.new(self._key, b"coopfed:" + label, hashlib.sha256).digest()

    def pseudonym(self, value: Any) -> str:
        mac = hmac.new(self._key, canonical(value), hashlib.sha256).hexdigest()
        return f"pseud:{mac[:32]}"

    def apply(self, event: dict[str, Any]) -> dict[str, Any]:
        event = copy.deepcopy(event)
        erased: list[str] = []
        masked: list[str] = []

        def erase(container: Any, key: Any, pointer: str) -> None:
            del container[key]
            erased.append(pointer)

        def digest(container: Any, key: Any, pointer: str) -> None:
            container[key] = "sha256:" + hashlib.sha256(canonical(container[key])).hexdigest()
            masked.append(pointer)

        def pseudonymise(container: Any, key: Any, pointer: str) -> None:
            container[key] = self.pseudonym(container[key])
            masked.append(pointer)

        rules = self.rules_for(str(event.get("revision", "")))
        for pointers, act in ((rules.erase, erase), (rules.digest, digest)):
            for pointer in pointers:
                _visit(event, _split(pointer), "", act)
        for pointer in rules.pseudonymise:
            _visit(event, _split(pointer), "", pseudonymise)
        if erased:
            event["erased"] = sorted(erased)
        if masked:
            event["masked"] = sorted(masked)
        return event


# --- writing ------------------------------------------------------------------------------
