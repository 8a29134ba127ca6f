"""The one narrow interface every policy engine implements, and the factory that picks one."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from coopfed.node.policy.errors import PolicyError
from coopfed.node.policy.loader import PolicySet

_PATH = re.compile(r"^[A-Za-z_]\w*(/[A-Za-z_]\w*)*$")


@runtime_checkable
class PolicyEngine(Protocol):
    """Evaluates a document of the policy set (path "pkg/sub/rule") for one input.

    `evaluate` returns the document's value, or None where it is undefined. It raises
    PolicyUnavailable when the engine cannot be reached and PolicyError for anything
    else that went wrong. `evaluate_many` answers many inputs for one path at once, in
    order, from one revision (one compiled query, one OPA request): a PolicyError from any
    input fails the whole batch. `revision` names the policy set that answers.
    """

    @property
    def revision(self) -> str: ...

    def evaluate(self, path: str, input: Any) -> Any: ...

    def evaluate_many(self, path: str, inputs: Sequence[Any]) -> list[Any]: ...

    def close(self) -> None: ...


def check_path(path: str) -> str:
    """A document path: slash-separated Rego identifiers, nothing that could escape a URL."""
    if not isinstance(path, str) or not _PATH.fullmatch(path):
        raise PolicyError(f"not a policy path: {path!r}")
    return path


def input_json(value: Any) -> str:
    """The input as compact JSON text, or PolicyError where it is not JSON (NaN, objects, lone
    surrogates), so every engine refuses the same inputs. Non-ASCII stays unescaped: the
    embedded engine compares strings as written (see embedded.py)."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        text.encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise PolicyError(f"policy input is not valid JSON: {exc}") from exc
    return text


def make_engine(
    kind: str,
    policies: PolicySet,
    *,
    opa_url: str = "",
    opa_binary: str = "",
    push: bool = True,
    timeout: float = 2.0,
    opa_token: str = "",
    opa_ca_file: str = "",
) -> PolicyEngine:
    """Build the engine named by `kind`.

    wasm: OPA's compiler to WebAssembly, run in-process (wasmtime); compiled once for this
    policy set with `opa_binary`, or the OPA that find_tool finds (the default engine).
    embedded: in-process Rego (regopy), compiled once for this policy set; needs no OPA.
    opa: an OPA server over REST. With `opa_url`, that server (policies pushed to it unless
    push is False, when the server is trusted to hold this policy set already); without it,
    `opa_binary` is started as a sidecar on a loopback port and stopped on close. `opa_token`
    is the bearer token for that server and `opa_ca_file` the CA that verifies its https
    certificate (a sidecar has its own token and needs neither).
    """
    if kind == "wasm":
        from coopfed.node.policy.regotest import find_tool
        from coopfed.node.policy.wasm import WasmEngine

        binary = find_tool("opa", opa_binary or None)
        if binary is None:
            raise PolicyError(
                "the wasm engine compiles policies with OPA, and no OPA binary was found: set "
                '[policy] opa_binary (or COOPFED_OPA), or choose engine = "embedded"'
            )
        return WasmEngine(policies, binary)
    if kind == "embedded":
        from coopfed.node.policy.embedded import EmbeddedEngine

        return EmbeddedEngine(policies)
    if kind == "opa":
        from coopfed.node.policy.opa import OpaEngine

        if opa_url:
            return OpaEngine(
                opa_url, policies, push=push, timeout=timeout, token=opa_token, ca_file=opa_ca_file
            )
        if opa_binary:
            return OpaEngine.with_sidecar(opa_binary, policies, timeout=timeout)
        raise PolicyError("the opa engine needs an opa_url or an opa_binary")
    raise PolicyError(f"unknown policy engine {kind!r} (wasm, embedded or opa)")
