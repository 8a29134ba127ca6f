"""In-process Rego through regopy (rego-cpp): the policy set compiled once, queried per input."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import regopy

from coopfed.node.policy.engine import check_path, input_json
from coopfed.node.policy.errors import PolicyError
from coopfed.node.policy.loader import PolicySet


class EmbeddedEngine:
    """Evaluates entrypoints of one compiled bundle; a new policy revision needs a new engine.

    regopy's interpreter holds the input as state between setting it and the query, and its
    C calls release the GIL, so one lock serialises evaluation (the node calls from several
    threads). The bundle is built once; a path that is not an annotated entrypoint triggers
    one rebuild that adds it, so any document can be queried, as with OPA.
    """

    def __init__(self, policies: PolicySet) -> None:
        self._policies = policies
        self._lock = threading.Lock()
        self._entrypoints = set(policies.entrypoints)
        self._bundle = self._build(self._entrypoints) if self._entrypoints else None
        self._runner: regopy.Interpreter | None = regopy.Interpreter()

    @property
    def revision(self) -> str:
        return self._policies.revision

    def evaluate(self, path: str, input: Any) -> Any:
        return self.evaluate_many(path, [input])[0]

    def evaluate_many(self, path: str, inputs: Sequence[Any]) -> list[Any]:
        """Each input's document, in order, on the one compiled bundle; PolicyError where any fails."""
        check_path(path)
        # JSON terms, not regopy.Input: Input passes strings to C as NUL-terminated, so
        # "demand\x00x" would arrive as "demand"; in JSON text the NUL stays escaped.
        terms = [input_json(value) for value in inputs]
        with self._lock:
            if self._runner is None:
                raise PolicyError("the embedded policy engine is closed")
            if path not in self._entrypoints:
                self._bundle = self._build(self._entrypoints | {path})
                self._entrypoints.add(path)
            return [self._query(self._runner, path, term) for term in terms]

    def _query(self, runner: regopy.Interpreter, path: str, term: str) -> Any:
        try:
            runner.set_input_term(term)
            output = runner.query_bundle_entrypoint(self._bundle, path)
        except (regopy.RegoError, ValueError) as exc:  # ValueError: output that is not JSON
            raise PolicyError(f"evaluating {path}: {exc}") from exc
        if not output.ok():
            raise PolicyError(f"evaluating {path}: {output}")
        results = output.results
        if not results or not results[0].expressions:
            return None  # undefined, as OPA's REST API reports by leaving out "result"
        return results[0].expressions[0]

    def close(self) -> None:
        with self._lock:
            self._runner = None
            self._bundle = None

    def _build(self, entrypoints: set[str]) -> regopy.Bundle:
        builder = regopy.Interpreter()
        try:
            builder.add_data_json(input_json(self._policies.data))
            for name, source in sorted(self._policies.modules.items()):
                builder.add_module(name, source)
            bundle = builder.build(None, sorted(entrypoints))
        except regopy.RegoError as exc:
            raise PolicyError(f"compiling the policy set: {exc}") from exc
        if not bundle.ok():
            raise PolicyError("compiling the policy set failed")
        return bundle
