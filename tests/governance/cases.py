"""Governance decisions every engine must give: one table of inputs and expected outcomes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DECISION_PATH = "coopfed/governance/decision"
ASSESSMENT_PATH = "coopfed/governance/organisation/assessment"

JAN = 1704067200  # 2024-01-01T00:00Z
FEB = 1706745600  # 2024-02-01T00:00Z
NOW = 1710000000
HELD = {"start": 1672531200, "end": 1735689600}  # 2023 and 2024


def data_request(**changes: Any) -> dict[str, Any]:
    """A data request as the node passes it to the policy, with `changes` applied."""
    request = {
        "datasets": ["demand"],
        "fields": ["kwh", "member_count"],
        "granularity": "aggregate",
        "period": {"start": JAN, "end": FEB},
        "flow": "third_party",
        "purpose": {"code": "dpv:AcademicResearch", "description": "Evening peaks in community energy use"},
        "commitments": ["results_shared_with_members"],
    }
    return {**request, **changes}


CATALOGUE = {
    "demand": {"held": True, "period": HELD, "consenting_members": 12},
    "generation": {"held": True, "period": HELD, "consenting_members": 3},
    "export": {"held": False, "period": None, "consenting_members": 0},
}


def assessment(score: int = 85, verified: bool = True, expires_at: int = NOW + 86400) -> dict[str, Any]:
    return {"score": score, "verified": verified, "expires_at": expires_at, "dimensions": {}, "reasons": []}


def decision_input(request: Any = None, org: Any = None, **extra: Any) -> dict[str, Any]:
    return {
        "request": data_request() if request is None else request,
        "catalogue": CATALOGUE,
        "organisation": {"assessment": assessment() if org is None else org},
        "now": NOW,
        **extra,
    }


def organisation_input(
    type: Any = "university",
    commitments: Any = ("not_for_profit", "open_publication"),
    verified: Any = True,
    completed: Any = 0,
    revoked: Any = 0,
) -> dict[str, Any]:
    return {
        "organisation": {
            "type": type,
            "commitments": list(commitments) if isinstance(commitments, tuple) else commitments,
            "verified": verified,
            "track_record": {"completed_grants": completed, "revoked_grants": revoked},
        },
        "now": NOW,
    }


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    input: Any
    outcome: str  # decision outcome, or the assessment's score as text
    reason: str  # words one reason must contain


CASES: list[Case] = [
    Case("approve", DECISION_PATH, decision_input(), "approve", "reaches the approval threshold of 70"),
    Case(
        "individual is referred",
        DECISION_PATH,
        decision_input(data_request(granularity="individual", fields=["kwh", "member_ref"])),
        "refer",
        "individual data always go to the board",
    ),
    Case("unverified", DECISION_PATH, decision_input(org=assessment(85, False)), "refer", "not verified yet"),
    Case("middling", DECISION_PATH, decision_input(org=assessment(45)), "refer", "between the thresholds"),
    Case("weak organisation", DECISION_PATH, decision_input(org=assessment(20)), "reject", "below the floor"),
    Case(
        "expired assessment",
        DECISION_PATH,
        decision_input(org=assessment(90, True, NOW)),
        "reject",
        "no current assessment",
    ),
    Case(
        "prohibited purpose",
        DECISION_PATH,
        decision_input(
            data_request(purpose={"code": "dpv:Marketing", "description": "Selling solar panels to members"})
        ),
        "reject",
        "never releases data for marketing",
    ),
    Case("not held", DECISION_PATH, decision_input(data_request(datasets=["export"])), "reject", "holds no"),
    Case(
        "not in catalogue",
        DECISION_PATH,
        decision_input(data_request(datasets=["gas"])),
        "reject",
        "no dataset called 'gas' (it offers: demand, export, generation)",
    ),
    Case(
        "too few consenting",
        DECISION_PATH,
        decision_input(data_request(datasets=["generation"])),
        "reject",
        "Only 3 members allow their electricity generation data to be shared with third parties",
    ),
    Case(
        "period beyond data held",
        DECISION_PATH,
        decision_input(data_request(period={"start": JAN, "end": 1767225600})),
        "reject",
        "(2024-01-01 00:00 to 2026-01-01 00:00 UTC) is not within",
    ),
    Case(
        "a week (remainders the embedded engine once got wrong)",
        DECISION_PATH,
        decision_input(data_request(period={"start": JAN, "end": JAN + 7 * 86400})),
        "approve",
        "reaches the approval threshold",
    ),
    Case(
        "wrong flow",
        DECISION_PATH,
        decision_input(data_request(flow="open_data")),
        "reject",
        "third_party flow",
    ),
    Case(
        "malformed period",
        DECISION_PATH,
        decision_input(data_request(period={"start": FEB, "end": JAN})),
        "reject",
        "The period must run",
    ),
    Case(
        "missing granularity",
        DECISION_PATH,
        decision_input({**data_request(), "granularity": None}),
        "reject",
        "aggregate or individual",
    ),
    Case("no input", DECISION_PATH, None, "reject", "missing or is not an object"),
    Case("list input", DECISION_PATH, ["approve"], "reject", "missing or is not an object"),
    Case("assessment university", ASSESSMENT_PATH, organisation_input(), "76", "55 points"),
    Case(
        "assessment company", ASSESSMENT_PATH, organisation_input("company", (), False), "22", "not verified"
    ),
    Case(
        "assessment revoked",
        ASSESSMENT_PATH,
        organisation_input(completed=3, revoked=1),
        "66",
        "revoked 1 of its grants",
    ),
    Case(
        "assessment unknown type",
        ASSESSMENT_PATH,
        organisation_input("guild"),
        "49",
        "'guild' is not one the co-op recognises",
    ),
    Case(
        "assessment missing verified",
        ASSESSMENT_PATH,
        {"organisation": {"type": "council"}, "now": NOW},
        "0",
        "true or false",
    ),
    Case("assessment no input", ASSESSMENT_PATH, None, "0", "missing or is not an object"),
]


def check(case: Case, result: Any) -> None:
    """The expectations every engine's result must meet."""
    assert isinstance(result, dict), result
    reasons = result["reasons"]
    assert any(case.reason in r for r in reasons), reasons
    if case.path == DECISION_PATH:
        assert result["outcome"] == case.outcome, (result["outcome"], reasons)
        assert set(result["stages"]) == {"requirement", "organisation", "purpose"}
    else:
        assert str(result["score"]) == case.outcome, (result["score"], reasons)
