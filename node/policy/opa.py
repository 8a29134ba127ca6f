"""An OPA server over its REST API, through opa_http.OpaHttp (one reused session).

Every decision is pinned to the node's revision: the engine stores the revision it pushed in
the server's data (`data.coopfed_node.revision`) and asks for it in the same query as the
decision, so OPA answers both from one snapshot; an answer from any other revision (OPA
restarted empty, its data replaced behind the node's back, another writer) is refused, never
used. This catches every change that does not also forge the fact, which is why the sidecar
admits only the node's token (see sidecar.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

from coopfed.node.policy.engine import check_path, input_json
from coopfed.node.policy.errors import PolicyError, PolicyRevisionMismatch
from coopfed.node.policy.loader import PolicySet
from coopfed.node.policy.opa_http import OpaHttp
from coopfed.node.policy.sidecar import OpaSidecar

POLICY_ID_PREFIX = "coopfed/"
"""Policies this engine pushes are stored under ids with this prefix (and only those are pruned)."""
REVISION_ROOT = "coopfed_node"
"""The top-level data key where the engine stores the revision it pushed (reserved)."""


_REVISION_QUERY = f"revision := [r | r := data.{REVISION_ROOT}.revision]"


def _ref(path: str) -> str:
    """data["pkg"]["rule"]: segments quoted as JSON strings, so no path can inject Rego."""
    return "data" + "".join(f"[{json.dumps(seg)}]" for seg in path.split("/"))


def _first_row(body: Any) -> dict[str, Any]:
    rows = body.get("result") if isinstance(body, dict) else None
    return rows[0] if isinstance(rows, list) and rows and isinstance(rows[0], dict) else {}


class OpaEngine:
    """Evaluates documents on an OPA server; optionally owns the sidecar that runs it."""

    def __init__(
        self,
        url: str,
        policies: PolicySet,
        *,
        push: bool = True,
        timeout: float = 2.0,
        retries: int = 1,
        token: str = "",
        ca_file: str = "",
        sidecar: OpaSidecar | None = None,
    ) -> None:
        self._http = OpaHttp(url, token=token, ca_file=ca_file, timeout=timeout, retries=retries)
        self._policies = policies
        self._sidecar = sidecar
        # push=False: the server is trusted to hold this policy set already, without the fact.
        self._pinned = push
        if push:
            try:
                self.push(policies)
            except BaseException:
                self.close()
                raise

    @classmethod
    def with_sidecar(cls, binary: str, policies: PolicySet, *, timeout: float = 2.0) -> OpaEngine:
        """Start `opa run --server` on a loopback port, load `policies` into it, own it."""
        sidecar = OpaSidecar(binary)
        sidecar.start()
        try:
            return cls(sidecar.url, policies, timeout=timeout, token=sidecar.token, sidecar=sidecar)
        except BaseException:
            sidecar.stop()
            raise

    @property
    def revision(self) -> str:
        return self._policies.revision

    @property
    def sidecar(self) -> OpaSidecar | None:
        """The OPA server this engine started and owns, if it did."""
        return self._sidecar

    def evaluate(self, path: str, input: Any) -> Any:
        check_path(path)
        input_json(input)  # refuse what the embedded engine refuses, before the wire
        if not self._pinned:
            body = self._http.post(f"v1/data/{path}", {"input": input})
            return (body or {}).get("result")  # absent where the document is undefined
        # One ad-hoc query, one snapshot: the document (as a list, empty where undefined) and
        # the revision fact. Segments are quoted as JSON strings, so no path can inject Rego.
        query = f"result := [x | x := {_ref(path)}]; {_REVISION_QUERY}"
        row = self._pinned_row(query, input)
        result = row.get("result") or []
        return result[0] if result else None

    def evaluate_many(self, path: str, inputs: Sequence[Any]) -> list[Any]:
        """One request: OPA evaluates the document once per input (`with input as`) and, in the
        same snapshot, reads the revision fact once for the whole batch. Indices missing from
        the answer were undefined."""
        check_path(path)
        for value in inputs:
            input_json(value)
        answers = f"result := [[n, v] | some n, i in input.batch; v := {_ref(path)} with input as i]"
        if self._pinned:
            row = self._pinned_row(f"{answers}; {_REVISION_QUERY}", {"batch": list(inputs)})
        else:
            row = _first_row(
                self._http.post("v1/query", {"query": answers, "input": {"batch": list(inputs)}})
            )
        found = {n: v for n, v in row.get("result") or []}
        return [found.get(n) for n in range(len(inputs))]

    def _pinned_row(self, query: str, input: Any) -> dict[str, Any]:
        """The query's one row, refused unless it was answered by this engine's revision."""
        row = _first_row(self._http.post("v1/query", {"query": query, "input": input}))
        found = row.get("revision") or ["none"]
        if found != [self.revision]:
            raise PolicyRevisionMismatch(
                f"OPA holds policy revision {str(found[0])[:64]}, not the node's active revision "
                f"{self.revision}; refusing to decide until the node loads its policies again"
            )
        return row

    def push(self, policies: PolicySet) -> None:
        """Replace the server's data and this engine's modules with `policies`."""
        if REVISION_ROOT in policies.data:
            raise PolicyError(f"policy data may not use the top-level key {REVISION_ROOT!r} (reserved)")
        # The root PUT drops the old revision fact, and the new one is written last: while the
        # server holds a mix of two revisions, no decision passes the check.
        self._http.put("v1/data", policies.data)
        wanted = {POLICY_ID_PREFIX + name: src for name, src in policies.modules.items()}
        _settle(
            partial(self._http.put_policy, policy_id, source) for policy_id, source in sorted(wanted.items())
        )
        held = [p.get("id", "") for p in (self._http.get("v1/policies") or {}).get("result", [])]
        stale = [p for p in held if p.startswith(POLICY_ID_PREFIX) and p not in wanted]
        _settle(partial(self._http.delete, f"v1/policies/{policy_id}") for policy_id in stale)
        self._http.put(f"v1/data/{REVISION_ROOT}", {"revision": policies.revision})
        self._policies = policies

    def close(self) -> None:
        self._http.close()
        if self._sidecar is not None:
            self._sidecar.stop()
            self._sidecar = None


def _settle(calls: Iterable[Callable[[], object]]) -> None:
    """Run every call, retrying the ones OPA refused while others still succeed.

    OPA compiles each module as it is PUT against the modules it already holds, so a module
    that uses another one (or a stale one that another still uses) succeeds only in the
    right order; retrying until no progress finds that order without parsing imports.
    """
    pending = list(calls)
    while pending:
        failed: list[Callable[[], object]] = []
        first_error: PolicyError | None = None
        for fn in pending:
            try:
                fn()
            except PolicyError as exc:  # PolicyUnavailable is no PolicyError: it propagates
                failed.append(fn)
                first_error = first_error or exc
        if len(failed) == len(pending):
            assert first_error is not None
            raise first_error
        pending = failed
