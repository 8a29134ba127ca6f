"""The in-process engines on their own (embedded and wasm): compile once, hostile input, threads, failures."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from coopfed.node.policy import PolicyEngine, PolicyError, PolicySet, make_engine, make_policy_set
from coopfed.node.policy.consent import CONSENT_PATH
from coopfed.node.policy.embedded import EmbeddedEngine
from coopfed.node.policy.wasm import WasmEngine

from .cases import CASES, question


@pytest.fixture(scope="module", params=["embedded", "wasm"])
def engine(request: pytest.FixtureRequest, policy_set: PolicySet) -> Iterator[PolicyEngine]:
    if request.param == "wasm":
        request.getfixturevalue("opa_binary")  # skips where OPA is not installed
    engine = make_engine(request.param, policy_set)
    assert isinstance(engine, EmbeddedEngine | WasmEngine)
    yield engine
    engine.close()


def test_revision_is_the_policy_sets(engine: PolicyEngine, policy_set: PolicySet) -> None:
    assert engine.revision == policy_set.revision


def test_undefined_documents_are_none(engine: PolicyEngine) -> None:
    assert engine.evaluate("coopfed/consent/no_such_rule", {}) is None


def test_any_document_can_be_queried_not_only_entrypoints(engine: PolicyEngine) -> None:
    assert engine.evaluate("coopfed/consent/allowed", question("red")) is True
    assert engine.evaluate(CONSENT_PATH, question("red"))["allowed"] is True  # still answers


@pytest.mark.parametrize(
    "value",
    [
        question(persona="privacy_first\x00"),
        question("red", flow="open_data", purpose="dpv:PublicBenefit", persona="generation_sharer\x00"),
        question(dataset="demand\x00generation"),
        question(flow='internal", "flow": "open_data'),
        question(flow="internal\\"),
    ],
)
def test_hostile_strings_are_not_truncated_or_injected(engine: PolicyEngine, value: dict) -> None:
    assert engine.evaluate(CONSENT_PATH, value)["allowed"] is False


@pytest.mark.parametrize("value", [{"x": float("nan")}, {"x": object()}, {"x": "\ud800"}, {("a",): 1}])
def test_input_that_is_not_json_is_a_policy_error(engine: PolicyEngine, value: object) -> None:
    with pytest.raises(PolicyError, match="not valid JSON"):
        engine.evaluate(CONSENT_PATH, value)


def test_threads_get_their_own_answers(engine: PolicyEngine) -> None:
    cases = CASES * 8
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda c: engine.evaluate(CONSENT_PATH, c.input)["allowed"], cases))
    assert answers == [c.allowed for c in cases]


def test_a_policy_that_does_not_compile_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="compiling"):
        EmbeddedEngine(
            make_policy_set({"b.rego": "package b\n\n# METADATA\n# entrypoint: true\nx := if {\n"}, {})
        )


@pytest.mark.parametrize("kind", ["embedded", "wasm"])
def test_a_closed_engine_refuses(policy_set: PolicySet, kind: str, opa_binary: str) -> None:
    engine = make_engine(kind, policy_set, opa_binary=opa_binary)
    engine.close()
    with pytest.raises(PolicyError, match="closed"):
        engine.evaluate(CONSENT_PATH, question())
    with pytest.raises(PolicyError, match="closed"):
        engine.evaluate_many(CONSENT_PATH, [question()])


def test_bad_paths_are_refused(engine: PolicyEngine) -> None:
    with pytest.raises(PolicyError, match="not a policy path"):
        engine.evaluate("coopfed.consent.decision", {})
