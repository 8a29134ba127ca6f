"""The governance policies on both engines: the shared table, and identical answers on generated inputs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coopfed.node.policy import PolicySet
from coopfed.node.policy.embedded import EmbeddedEngine
from coopfed.node.policy.opa import OpaEngine
from coopfed.node.policy.sidecar import OpaSidecar

from .cases import ASSESSMENT_PATH, CASES, DECISION_PATH, Case, check, data_request, decision_input

_IDS = [c.name for c in CASES]


@pytest.fixture(scope="module")
def embedded(policy_set: PolicySet) -> Iterator[EmbeddedEngine]:
    engine = EmbeddedEngine(policy_set)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def opa(opa_server: OpaSidecar, policy_set: PolicySet) -> Iterator[OpaEngine]:
    engine = OpaEngine(opa_server.url, policy_set, push=False, token=opa_server.token)
    yield engine
    engine.close()


@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_embedded_answers_the_table(embedded: EmbeddedEngine, case: Case) -> None:
    check(case, embedded.evaluate(case.path, case.input))


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_opa_gives_the_same_answer_on_every_case(
    embedded: EmbeddedEngine, opa: OpaEngine, case: Case
) -> None:
    result = opa.evaluate(case.path, case.input)
    check(case, result)
    assert result == embedded.evaluate(case.path, case.input)


def test_every_stage_and_dimension_is_scored_with_reasons(embedded: EmbeddedEngine) -> None:
    result = embedded.evaluate(DECISION_PATH, decision_input())
    stages = result["stages"]
    assert set(stages["requirement"]["dimensions"]) == {
        "held",
        "granularity",
        "fields",
        "period",
        "flow",
        "consent",
    }
    assert set(stages["purpose"]["dimensions"]) == {"alignment", "public_benefit", "value_to_members", "risk"}
    for stage in ("purpose",):
        for dim in stages[stage]["dimensions"].values():
            assert isinstance(dim["score"], int)
            assert isinstance(dim["weight"], int)
            assert dim["reason"]
    purpose = stages["purpose"]["score"]
    assert result["score"] == round((85 * 50 + purpose * 50) / 100)


def test_assessment_scores_each_dimension(embedded: EmbeddedEngine) -> None:
    from .cases import organisation_input

    result = embedded.evaluate(ASSESSMENT_PATH, organisation_input())
    dims = result["dimensions"]
    assert set(dims) == {"type", "ethos", "track_record", "verification"}
    expected = sum(d["score"] * d["weight"] for d in dims.values()) / sum(d["weight"] for d in dims.values())
    assert result["score"] == round(expected)
    assert result["reusable"] is True
    assert result["expires_at"] > result["assessed_at"]


# Generated inputs: mostly well-formed requests with random choices, some hostile values.
_anything = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=5,
)


def _mostly(values: list[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(values), st.sampled_from(values), st.sampled_from(values), _anything)


_requests = st.builds(
    data_request,
    datasets=st.one_of(
        st.lists(st.sampled_from(["demand", "generation", "export", "gas"]), min_size=1, max_size=3),
        _anything,
    ),
    fields=st.lists(st.sampled_from(["kwh", "member_count", "member_ref", "price"]), max_size=3, unique=True),
    granularity=_mostly(["aggregate", "individual"]),
    period=st.one_of(
        st.fixed_dictionaries(
            {
                "start": st.integers(1672531200 // 1800, 1767225600 // 1800).map(lambda h: h * 1800),
                "end": st.integers(1672531200 // 1800, 1767225600 // 1800).map(lambda h: h * 1800),
            }
        ),
        _anything,
    ),
    flow=_mostly(["third_party", "open_data", "internal"]),
    purpose=st.fixed_dictionaries(
        {
            "code": _mostly(
                ["dpv:AcademicResearch", "dpv:PublicBenefit", "dpv:CommercialResearch", "dpv:Marketing"]
            ),
            "description": st.sampled_from(["", "short", "A long enough description of the work"]),
        }
    ),
    commitments=st.lists(
        st.sampled_from(["results_shared_with_members", "no_onward_sharing"]), max_size=2, unique=True
    ),
)
_assessments = st.fixed_dictionaries(
    {
        "score": st.integers(0, 100),
        "verified": st.booleans(),
        "expires_at": st.sampled_from([0, 1710000000, 1810000000]),
        "dimensions": st.just({}),
        "reasons": st.just([]),
    }
)
_inputs = st.one_of(
    st.builds(lambda r, a: decision_input(r, a), _requests, st.one_of(_assessments, _assessments, _anything)),
    _anything,
)


@pytest.mark.integration
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=_inputs)
def test_engines_agree_on_generated_requests(embedded: EmbeddedEngine, opa: OpaEngine, question: Any) -> None:
    expected = embedded.evaluate(DECISION_PATH, question)
    assert opa.evaluate(DECISION_PATH, question) == expected
    assert expected["outcome"] in {"approve", "reject", "refer"}
    if expected["outcome"] == "approve":
        assert expected["stages"]["requirement"]["passed"] is True


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(0, 4_102_444_800 // 1800), days=st.integers(1, 700))
def test_dates_in_reasons_are_right(embedded: EmbeddedEngine, start: int, days: int) -> None:
    """Dates are computed by arithmetic in Rego (the engines' time builtins are not relied on)."""
    begin = start * 1800
    question = decision_input(data_request(period={"start": begin, "end": begin + days * 86400}))
    held = question["catalogue"]["demand"]["period"]
    if held["start"] <= begin and begin + days * 86400 <= held["end"]:
        return
    reasons = " ".join(embedded.evaluate(DECISION_PATH, question)["reasons"])
    for t in (begin, begin + days * 86400):
        assert datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M") in reasons
