"""An OPA server over its REST API, through opa-python-client with one reused session.

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
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from opa_client import OpaClient
from opa_client import errors as opa_errors

from coopfed.node.policy.engine import check_path, input_json
from coopfed.node.policy.errors import PolicyError, PolicyRevisionMismatch, PolicyUnavailable
from coopfed.node.policy.loader import PolicySet
from coopfed.node.policy.sidecar import OpaSidecar

T = TypeVar("T")

POLICY_ID_PREFIX = "coopfed/"
"""Policies this engine pushes are stored under ids with this prefix (and only those are pruned)."""
REVISION_ROOT = "coopfed_node"
"""The top-level data key where the engine stores the revision it pushed (reserved)."""


_REVISION_QUERY = f"revision := [r | r := data.{REVISION_ROOT}.revision]"


def _ref(path: str) -> str:
    """data["pkg"]["rule"]: segments quoted as JSON strings, so no path can inject Rego."""
    return "data" + "".join(f"[{json.dumps(seg)}]" for seg in path.split("/"))


def _first_row(body: dict[str, Any]) -> dict[str, Any]:
    rows = body.get("result")
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
        parts = urlsplit(url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:  # a port that is not a number
            port = 0
        if parts.scheme not in ("http", "https") or not parts.hostname or not port:
            raise PolicyError(f"not an OPA server URL: {url!r}")
        if ca_file and parts.scheme != "https":
            raise PolicyError("opa_ca_file is set but the OPA URL is not https")
        self._policies = policies
        self._sidecar = sidecar
        # push=False: the server is trusted to hold this policy set already, without the fact.
        self._pinned = push
        self._client = OpaClient(
            host=parts.hostname,
            port=port,
            ssl=(ca_file or True) if parts.scheme == "https" else False,  # a CA file, or the system's
            token=token or None,
            timeout=timeout,
            retries=retries,
        )
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
            body = _call(partial(self._client.query_rule, input, path))
            return body.get("result")  # absent where the document is undefined
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
            body = _call(partial(self._post, "query", {"query": answers, "input": {"batch": list(inputs)}}))
            row = _first_row(body)
        found = {n: v for n, v in row.get("result") or []}
        return [found.get(n) for n in range(len(inputs))]

    def _pinned_row(self, query: str, input: Any) -> dict[str, Any]:
        """The query's one row, refused unless it was answered by this engine's revision."""
        row = _first_row(_call(partial(self._post, "query", {"query": query, "input": input})))
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
        _call(partial(self._put_root_data, policies.data))
        wanted = {POLICY_ID_PREFIX + name: src for name, src in policies.modules.items()}
        _settle(
            partial(self._client.update_policy_from_string, source, policy_id, False)
            for policy_id, source in sorted(wanted.items())
        )
        stale = [
            p
            for p in _call(self._client.get_policies_list)
            if p.startswith(POLICY_ID_PREFIX) and p not in wanted
        ]
        _settle(partial(self._client.delete_policy, policy_id) for policy_id in stale)
        _call(partial(self._put, f"data/{REVISION_ROOT}", {"revision": policies.revision}))
        self._policies = policies

    def _post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._client._session.post(
            f"{self._client.root_url}/{endpoint}", json=body, timeout=self._client.timeout
        )
        response.raise_for_status()
        return response.json()

    def _put_root_data(self, data: dict[str, Any]) -> None:
        # The client's update_or_create_data("") PUTs to /v1/data/, which OPA redirects to
        # /v1/data, and the redirected request loses its body; so PUT the root on its session.
        self._put("data", data)

    def _put(self, endpoint: str, body: Any) -> None:
        response = self._client._session.put(
            f"{self._client.root_url}/{endpoint}", json=body, timeout=self._client.timeout
        )
        response.raise_for_status()

    def close(self) -> None:
        self._client.close_connection()
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
                _call(fn)
            except PolicyError as exc:  # PolicyUnavailable is no PolicyError: it propagates
                failed.append(fn)
                first_error = first_error or exc
        if len(failed) == len(pending):
            assert first_error is not None
            raise first_error
        pending = failed


def _call(fn: Callable[[], T]) -> T:
    """Run one REST call, mapping transport failures to PolicyUnavailable, the rest to PolicyError."""
    try:
        return fn()
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise PolicyUnavailable(f"OPA is unreachable: {exc.__class__.__name__}") from exc
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        detail = _error_message(exc.response)
        if status in (502, 503, 504):
            raise PolicyUnavailable(f"OPA answered {status}: {detail}") from exc
        raise PolicyError(f"OPA answered {status}: {detail}") from exc
    except _CLIENT_ERRORS as exc:
        raise PolicyError(f"OPA refused: {exc}") from exc
    except requests.RequestException as exc:
        raise PolicyError(f"OPA request failed: {exc}") from exc
    except ValueError as exc:  # a body that is not JSON, or input that cannot be encoded
        raise PolicyError(f"OPA exchange failed: {exc}") from exc


_CLIENT_ERRORS = (
    opa_errors.RegoParseError,
    opa_errors.DeletePolicyError,
    opa_errors.PolicyNotFoundError,
    opa_errors.TypeException,
)


def _error_message(response: requests.Response | None) -> str:
    if response is None:
        return "no response"
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message", body))[:500] if isinstance(body, dict) else str(body)[:500]
