"""The consent cases every engine must answer as expected: one table, shared by the suites."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ALL_FLOWS = ["internal", "member_to_member", "coop_to_coop", "third_party", "open_data"]


def question(
    level: Any = "green",
    dataset: Any = "demand",
    flow: Any = "internal",
    purpose: Any = "dpv:ServiceProvision",
    *,
    persona: Any = "",
    choices: Any = None,
) -> dict[str, Any]:
    """A consent policy input, shaped as the node builds it."""
    profile = {"level": level, "persona": persona, "choices": {} if choices is None else choices}
    return {"profile": profile, "dataset": dataset, "flow": flow, "purpose": purpose}


@dataclass(frozen=True)
class Case:
    name: str
    input: Any
    allowed: bool
    reason: str  # words that one of the reasons must contain
    level: str = ""  # the profile_level the decision reports ("" = not checked)
    persona: str = ""


CASES: list[Case] = [
    # red: internal use only
    Case("red internal", question("red"), True, "may be used inside the co-op", "red"),
    Case(
        "red member to member",
        question("red", flow="member_to_member", purpose="dpv:CommunityEnergyBenchmarking"),
        False,
        "Consent is red",
        "red",
    ),
    Case(
        "red ignores choices",
        question("red", flow="open_data", purpose="dpv:PublicBenefit", choices={"demand": ALL_FLOWS}),
        False,
        "may only be used inside the co-op, not published as open data",
    ),
    Case("red internal outside aims", question("red", purpose="dpv:Marketing"), False, "'marketing'"),
    # green: every flow, within the aims
    Case(
        "green third party research",
        question("green", "generation", "third_party", "dpv:AcademicResearch"),
        True,
        "Consent is green",
        "green",
    ),
    Case("green open data", question("green", "export", "open_data", "dpv:PublicBenefit"), True, "open data"),
    Case(
        "green selling data",
        question("green", flow="third_party", purpose="dpv:SellDataToThirdParties"),
        False,
        "'selling data' is not among the co-op's aims",
    ),
    Case(
        "green advertising",
        question("green", flow="coop_to_coop", purpose="dpv:PersonalisedAdvertising"),
        False,
        "not among the co-op's aims",
    ),
    # amber: the member's choices per dataset
    Case(
        "amber chosen flow",
        question(
            "amber",
            flow="coop_to_coop",
            purpose="dpv:CommunityEnergyForecasting",
            choices={"demand": ["coop_to_coop"]},
        ),
        True,
        "Consent is amber",
        "amber",
    ),
    Case(
        "amber flow chosen for another dataset",
        question(
            "amber",
            flow="coop_to_coop",
            purpose="dpv:CommunityEnergyForecasting",
            choices={"generation": ["coop_to_coop"]},
        ),
        False,
        "does not allow electricity demand data to be shared with aligned co-ops",
    ),
    Case("amber internal always", question("amber", "export"), True, "used inside the co-op"),
    Case(
        "amber chosen but outside aims",
        question(
            "amber", flow="third_party", purpose="dpv:CommercialResearch", choices={"demand": ["third_party"]}
        ),
        False,
        "'commercial research'",
    ),
    Case(
        "amber refuses twice",
        question("amber", flow="open_data", purpose="dpv:Marketing"),
        False,
        "does not allow electricity demand data to be published as open data",
    ),
    # personas replace level and choices
    Case(
        "community first third party",
        question("green", flow="third_party", purpose="dpv:AcademicResearch", persona="community_first"),
        False,
        "The Community first persona sets consent to amber",
        "amber",
        "community_first",
    ),
    Case(
        "community first benchmarking",
        question(
            "red",
            flow="member_to_member",
            purpose="dpv:CommunityEnergyBenchmarking",
            persona="community_first",
        ),
        True,
        "shared with other members",
        "amber",
        "community_first",
    ),
    Case(
        "research friendly research",
        question("red", flow="third_party", purpose="dpv:NonCommercialResearch", persona="research_friendly"),
        True,
        "Research friendly persona",
        "amber",
        "research_friendly",
    ),
    Case(
        "research friendly forecasting for a third party",
        question(
            "green", flow="third_party", purpose="dpv:CommunityEnergyForecasting", persona="research_friendly"
        ),
        False,
        "only for: research and development, academic research, non-commercial research",
    ),
    Case(
        "research friendly other flows",
        question(
            "red", "export", "coop_to_coop", "dpv:CommunityEnergyForecasting", persona="research_friendly"
        ),
        True,
        "shared with aligned co-ops",
    ),
    Case(
        "privacy first refuses co-ops",
        question(
            "green", flow="coop_to_coop", purpose="dpv:CommunityEnergyForecasting", persona="privacy_first"
        ),
        False,
        "Privacy first persona sets consent to red",
        "red",
        "privacy_first",
    ),
    Case(
        "privacy first internal", question("green", persona="privacy_first"), True, "inside the co-op", "red"
    ),
    Case(
        "generation sharer demand",
        question("green", "demand", "open_data", "dpv:PublicBenefit", persona="generation_sharer"),
        False,
        "Generation sharer persona",
    ),
    Case(
        "generation sharer generation",
        question("red", "generation", "open_data", "dpv:PublicBenefit", persona="generation_sharer"),
        True,
        "published as open data",
    ),
    Case(
        "unknown persona",
        question("green", persona="everything_goes"),
        False,
        "persona is not one the co-op offers",
        persona="",
    ),
    # malformed questions are refused with a reason
    Case("unknown level", question("blue"), False, "green, amber or red"),
    Case(
        "missing level",
        {
            "profile": {"persona": "", "choices": {}},
            "dataset": "demand",
            "flow": "internal",
            "purpose": "dpv:ServiceProvision",
        },
        False,
        "green, amber or red",
    ),
    Case("unknown dataset", question(dataset="gas"), False, "dataset is not one the co-op holds"),
    Case("dataset not a string", question(dataset=["demand"]), False, "dataset is not one"),
    Case("unknown flow", question(flow="sold"), False, "five data flows"),
    Case("unknown purpose", question(purpose="dpv:Whatever"), False, "purpose vocabulary"),
    Case(
        "choice naming an unknown flow",
        question("amber", choices={"demand": ["internal", "everywhere"]}),
        False,
        "map each dataset to a list of flows",
    ),
    Case("choice not a list", question("amber", choices={"demand": "internal"}), False, "list of flows"),
    Case(
        "choices for an unknown dataset",
        question("amber", choices={"gas": ["internal"]}),
        False,
        "list of flows",
    ),
    Case("choices not an object", question("green", choices=["internal"]), False, "list of flows"),
    Case("persona not a string", question(persona=7), False, "persona must be a name"),
    Case(
        "profile missing",
        {"dataset": "demand", "flow": "internal", "purpose": "dpv:ServiceProvision"},
        False,
        "profile is missing",
    ),
    Case("profile not an object", {**question(), "profile": "green"}, False, "profile is missing"),
    Case("dataset missing", {"profile": question()["profile"]}, False, "dataset is not one"),
    Case("flow missing", {"profile": question()["profile"], "dataset": "demand"}, False, "five data flows"),
    Case(
        "purpose missing",
        {"profile": question()["profile"], "dataset": "demand", "flow": "internal"},
        False,
        "purpose vocabulary",
    ),
    Case(
        "persona missing",
        {**question(), "profile": {"level": "red", "choices": {}}},
        True,
        "inside the co-op",
    ),
    Case("input a list", ["green"], False, "must be a JSON object"),
    Case("input null", None, False, "must be a JSON object"),
    Case("input empty object", {}, False, "profile is missing"),
    Case(
        "NUL smuggled after a persona",
        question("red", flow="open_data", purpose="dpv:PublicBenefit", persona="generation_sharer\x00x"),
        False,
        "persona is not one",
    ),
    Case("NUL smuggled after a dataset", question(dataset="demand\x00"), False, "dataset is not one"),
    Case("non-ASCII lookalike flow", question("green", flow="open_d\u0430ta"), False, "five data flows"),
]
