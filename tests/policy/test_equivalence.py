"""Every engine gives identical answers, one by one and in batches: on every table case and on
generated inputs. OPA's server is the reference; embedded (rego-cpp) and wasm must match it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coopfed.node.policy import PolicySet
from coopfed.node.policy.consent import CONSENT_PATH
from coopfed.node.policy.embedded import EmbeddedEngine
from coopfed.node.policy.opa import OpaEngine
from coopfed.node.policy.wasm import WasmEngine

from .cases import ALL_FLOWS, CASES

pytestmark = pytest.mark.integration

LEVELS = ["green", "amber", "red"]
DATASETS = ["demand", "generation", "export"]
PERSONAS = ["", "community_first", "research_friendly", "privacy_first", "generation_sharer"]
AIMS = [
    "dpv:ServiceProvision",
    "dpv:ServiceOptimisation",
    "dpv:CommunityEnergyForecasting",
    "dpv:CommunityEnergyBenchmarking",
    "dpv:ResearchAndDevelopment",
    "dpv:AcademicResearch",
    "dpv:NonCommercialResearch",
    "dpv:PublicBenefit",
]
PURPOSES = [*AIMS, "dpv:CommercialResearch", "dpv:Marketing", "dpv:SellDataToThirdParties"]


# Arbitrary JSON: what a confused or hostile caller might send in any position.
def _is_str(value: Any) -> bool:
    return isinstance(value, str)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _mostly(values: list[Any]) -> st.SearchStrategy[Any]:
    """Known values or anything at all."""
    return st.sampled_from(values) | _json


def _question(level: Any, persona: Any, choices: Any, dataset: Any, flow: Any, purpose: Any) -> Any:
    return st.fixed_dictionaries(
        {
            "profile": st.fixed_dictionaries({"level": level, "persona": persona, "choices": choices}),
            "dataset": dataset,
            "flow": flow,
            "purpose": purpose,
        }
    )


# Well-formed questions: every level, persona (and an unknown one), choice, dataset, flow, purpose.
_well_formed = _question(
    st.sampled_from(LEVELS),
    st.sampled_from([*PERSONAS, "unknown_persona"]),
    st.dictionaries(st.sampled_from(DATASETS), st.lists(st.sampled_from(ALL_FLOWS), unique=True)),
    st.sampled_from(DATASETS),
    st.sampled_from(ALL_FLOWS),
    st.sampled_from(PURPOSES),
)
# Malformed ones: any field may be any JSON, or the whole input may be.
_malformed = (
    _question(
        _mostly(LEVELS),
        _mostly(PERSONAS),
        _mostly([{}]) | st.dictionaries(_mostly(DATASETS).filter(_is_str), st.lists(_mostly(ALL_FLOWS))),
        _mostly(DATASETS),
        _mostly(ALL_FLOWS),
        _mostly(PURPOSES),
    )
    | st.fixed_dictionaries({"profile": _json, "dataset": _json, "flow": _json, "purpose": _json})
    | _json
)

_SETTINGS = settings(
    derandomize=True,  # the same inputs on every run, so CI is reproducible
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


Engines = tuple[EmbeddedEngine, OpaEngine, WasmEngine]


@pytest.fixture(scope="module")
def every(engines: tuple[EmbeddedEngine, OpaEngine], wasm_engine: WasmEngine) -> Engines:
    return (*engines, wasm_engine)


def _agree(every: Engines, question: Any) -> dict[str, Any]:
    """The one answer all engines give to `question`, one by one."""
    embedded, opa, wasm = every
    reference = opa.evaluate(CONSENT_PATH, question)
    assert embedded.evaluate(CONSENT_PATH, question) == reference, "embedded differs from OPA"
    assert wasm.evaluate(CONSENT_PATH, question) == reference, "wasm differs from OPA"
    return reference


def _agree_in_batch(every: Engines, questions: list[Any]) -> None:
    """Each engine's batch answers equal OPA's one-by-one answers, in order."""
    expected = [every[1].evaluate(CONSENT_PATH, q) for q in questions]
    for engine in every:
        assert engine.evaluate_many(CONSENT_PATH, questions) == expected, type(engine).__name__


def test_engines_agree_on_every_case(every: Engines) -> None:
    for case in CASES:
        assert _agree(every, case.input)["allowed"] is case.allowed, case.name


def test_engines_agree_on_every_case_in_one_batch(every: Engines) -> None:
    _agree_in_batch(every, [case.input for case in CASES])
    _agree_in_batch(every, [])


@settings(_SETTINGS, max_examples=500)
@given(question=_well_formed)
def test_engines_agree_on_well_formed_questions(every: Engines, question: dict[str, Any]) -> None:
    _invariants(question, _agree(every, question))


@settings(_SETTINGS, max_examples=200)
@given(question=_malformed)
def test_engines_agree_on_malformed_questions(every: Engines, question: Any) -> None:
    _invariants(question, _agree(every, question))


@settings(_SETTINGS, max_examples=60)
@given(questions=st.lists(_well_formed | _malformed, max_size=12))
def test_engines_agree_on_generated_batches(every: Engines, questions: list[Any]) -> None:
    _agree_in_batch(every, questions)


def _invariants(question: Any, decision: dict[str, Any]) -> None:
    """What must hold whatever the input: the policy fails closed and explains itself."""
    assert decision["reasons"], "every decision carries a reason"
    if not decision["allowed"]:
        return
    assert question["purpose"] in AIMS, "allowed only within the co-op's aims"
    assert decision["profile_level"] in LEVELS
    flow, profile = question["flow"], question["profile"]
    if decision["profile_level"] == "red":
        assert flow == "internal"
    persona = profile.get("persona", "")
    assert persona in PERSONAS
    assert decision["persona"] == persona
    if not persona and profile["level"] == "amber" and flow != "internal":
        assert flow in profile["choices"][question["dataset"]]


def test_the_aims_above_are_the_policy_data_aims(policy_set: PolicySet) -> None:
    assert sorted(AIMS) == sorted(policy_set.data["coop"]["aims"])
    assert set(PURPOSES) <= policy_set.data["purposes"].keys()
