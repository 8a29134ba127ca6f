"""Batch evaluation on every engine: errors pinned to their input, the revision pin, refusals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from coopfed.node.policy import PolicyEngine, PolicyError, PolicySet, make_policy_set
from coopfed.node.policy.consent import CONSENT_PATH
from coopfed.node.policy.embedded import EmbeddedEngine
from coopfed.node.policy.errors import PolicyRevisionMismatch
from coopfed.node.policy.opa import OpaEngine
from coopfed.node.policy.replay import Replayer
from coopfed.node.policy.wasm import WasmEngine

from .cases import question

# Two complete definitions of one rule: both true is an evaluation error on every engine.
CONFLICT = make_policy_set(
    {"t.rego": "package t\n\n# METADATA\n# entrypoint: true\nx := 1 if input.a\n\nx := 2 if input.b\n"}, {}
)
Factory = Callable[[PolicySet], PolicyEngine]


@pytest.fixture(params=["embedded", "wasm", pytest.param("opa", marks=pytest.mark.integration)])
def factory(request: pytest.FixtureRequest, opa_binary: str) -> Factory:
    return {
        "embedded": EmbeddedEngine,
        "wasm": lambda p: WasmEngine(p, opa_binary),
        "opa": lambda p: OpaEngine.with_sidecar(opa_binary, p),
    }[request.param]


@pytest.fixture
def conflict(factory: Factory) -> Iterator[PolicyEngine]:
    engine = factory(CONFLICT)
    yield engine
    engine.close()


def test_a_failing_input_fails_the_batch_and_the_replay_pins_it(conflict: PolicyEngine) -> None:
    inputs = [{"a": True}, {"a": True, "b": True}, {"b": True}, {}, {"b": True, "a": 1}, {"a": True}]
    with pytest.raises(PolicyError):
        conflict.evaluate_many("t/x", inputs)
    answers = Replayer(conflict, CONFLICT, "any").evaluate_many("t/x", inputs)
    assert [ok for ok, _ in answers] == [True, False, True, True, False, True]
    assert [value for ok, value in answers if ok] == [1, 2, None, 1]
    assert conflict.evaluate("t/x", {"b": True}) == 2  # the engine still answers afterwards


def test_batches_refuse_input_that_is_not_json(conflict: PolicyEngine) -> None:
    with pytest.raises(PolicyError, match="not valid JSON"):
        conflict.evaluate_many("t/x", [{"a": True}, {"x": float("nan")}])
    with pytest.raises(PolicyError, match="not a policy path"):
        conflict.evaluate_many("t.x", [{}])
    assert conflict.evaluate_many("t/x", []) == []
    assert conflict.evaluate_many("t/nothing_here", [{}, {"a": True}]) == [None, None]


@pytest.mark.integration
def test_an_opa_batch_from_another_revision_is_refused(opa_binary: str, policy_set: PolicySet) -> None:
    engine = OpaEngine.with_sidecar(opa_binary, policy_set)
    try:
        assert engine.evaluate_many(CONSENT_PATH, [question("red")])[0]["allowed"] is True
        sidecar = engine.sidecar
        assert sidecar is not None
        requests.put(
            f"{sidecar.url}/v1/data/coopfed_node/revision",
            json="someone-else",
            headers={"Authorization": f"Bearer {sidecar.token}"},
            timeout=5,
        ).raise_for_status()
        with pytest.raises(PolicyRevisionMismatch, match="someone-else"):
            engine.evaluate_many(CONSENT_PATH, [question("red"), question("green")])
        with pytest.raises(PolicyRevisionMismatch):  # and a replay does not pin it to an input
            Replayer(engine, policy_set, "OPA").evaluate_many(CONSENT_PATH, [question("red")])
    finally:
        engine.close()


def test_the_wasm_engine_needs_opa_to_compile(policy_set: PolicySet, tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot run"):
        WasmEngine(policy_set, str(tmp_path / "no-opa"))


def test_a_wasm_compile_error_names_the_file_not_a_temporary_folder(opa_binary: str) -> None:
    broken = make_policy_set({"b.rego": "package b\n\n# METADATA\n# entrypoint: true\nx := y\n"}, {})
    with pytest.raises(PolicyError, match=r"compiling the policy set to wasm: .*policies/b\.rego") as err:
        WasmEngine(broken, opa_binary)
    assert "coopfed-wasm-" not in str(err.value)


def test_a_long_batch_answers_each_input_in_its_place(conflict: PolicyEngine) -> None:
    # Long enough to span several wasm calls; undefined answers fall between defined ones.
    inputs = [[{}, {"a": True}, {"b": True}][n % 3] if n % 7 else {"b": True, "n": n} for n in range(350)]
    assert conflict.evaluate_many("t/x", inputs) == [conflict.evaluate("t/x", i) for i in inputs]
    assert conflict.evaluate_many("t/x", inputs).count(None) == sum(1 for i in inputs if not i)
