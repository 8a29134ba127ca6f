package coopfed.consent_test

import data.coopfed.consent

_all := ["internal", "member_to_member", "coop_to_coop", "third_party", "open_data"]

_q(level, persona, choices, dataset, flow, purpose) := {
	"profile": {"level": level, "persona": persona, "choices": choices},
	"dataset": dataset,
	"flow": flow,
	"purpose": purpose,
}

# Each case: a name, the input, whether it is allowed, and words one reason must contain.
_cases := [
	{
		"name": "red allows internal use within the aims",
		"input": _q("red", "", {}, "demand", "internal", "dpv:ServiceProvision"),
		"allowed": true, "reason": "may be used inside the co-op",
	},
	{
		"name": "red refuses member to member",
		"input": _q("red", "", {"demand": _all}, "demand", "member_to_member", "dpv:CommunityEnergyBenchmarking"),
		"allowed": false, "reason": "Consent is red",
	},
	{
		"name": "red refuses open data",
		"input": _q("red", "", {}, "export", "open_data", "dpv:PublicBenefit"),
		"allowed": false, "reason": "only be used inside the co-op",
	},
	{
		"name": "red refuses internal use outside the aims",
		"input": _q("red", "", {}, "demand", "internal", "dpv:Marketing"),
		"allowed": false, "reason": "not among the co-op's aims",
	},
	{
		"name": "green allows third party research",
		"input": _q("green", "", {}, "generation", "third_party", "dpv:AcademicResearch"),
		"allowed": true, "reason": "Consent is green",
	},
	{
		"name": "green allows open data for public benefit",
		"input": _q("green", "", {}, "demand", "open_data", "dpv:PublicBenefit"),
		"allowed": true, "reason": "published as open data",
	},
	{
		"name": "green refuses selling data",
		"input": _q("green", "", {}, "demand", "third_party", "dpv:SellDataToThirdParties"),
		"allowed": false, "reason": "'selling data' is not among",
	},
	{
		"name": "green ignores choices",
		"input": _q("green", "", {"demand": ["internal"]}, "demand", "coop_to_coop", "dpv:CommunityEnergyForecasting"),
		"allowed": true, "reason": "shared with aligned co-ops",
	},
	{
		"name": "amber allows a chosen flow",
		"input": _q("amber", "", {"demand": ["coop_to_coop"]}, "demand", "coop_to_coop", "dpv:CommunityEnergyForecasting"),
		"allowed": true, "reason": "Consent is amber",
	},
	{
		"name": "amber refuses a flow chosen only for another dataset",
		"input": _q(
			"amber", "", {"generation": ["coop_to_coop"]},
			"demand", "coop_to_coop", "dpv:CommunityEnergyForecasting",
		),
		"allowed": false, "reason": "does not allow electricity demand data",
	},
	{
		"name": "amber always allows internal use",
		"input": _q("amber", "", {}, "export", "internal", "dpv:ServiceProvision"),
		"allowed": true, "reason": "used inside the co-op",
	},
	{
		"name": "amber refuses a chosen flow outside the aims",
		"input": _q("amber", "", {"demand": ["third_party"]}, "demand", "third_party", "dpv:CommercialResearch"),
		"allowed": false, "reason": "'commercial research' is not among",
	},
	{
		"name": "community first refuses third parties",
		"input": _q("green", "community_first", {}, "demand", "third_party", "dpv:AcademicResearch"),
		"allowed": false, "reason": "Community first persona",
	},
	{
		"name": "community first allows benchmarking",
		"input": _q("red", "community_first", {}, "demand", "member_to_member", "dpv:CommunityEnergyBenchmarking"),
		"allowed": true, "reason": "shared with other members",
	},
	{
		"name": "research friendly allows third party research",
		"input": _q("red", "research_friendly", {}, "demand", "third_party", "dpv:NonCommercialResearch"),
		"allowed": true, "reason": "Research friendly persona",
	},
	{
		"name": "research friendly refuses third party forecasting",
		"input": _q("green", "research_friendly", {}, "demand", "third_party", "dpv:CommunityEnergyForecasting"),
		"allowed": false, "reason": "only for: research and development",
	},
	{
		"name": "research friendly keeps other flows open to all aims",
		"input": _q("green", "research_friendly", {}, "export", "coop_to_coop", "dpv:CommunityEnergyForecasting"),
		"allowed": true, "reason": "shared with aligned co-ops",
	},
	{
		"name": "privacy first refuses aligned co-ops",
		"input": _q("green", "privacy_first", {"demand": _all}, "demand", "coop_to_coop", "dpv:CommunityEnergyForecasting"),
		"allowed": false, "reason": "Privacy first persona sets consent to red",
	},
	{
		"name": "privacy first allows internal use",
		"input": _q("green", "privacy_first", {}, "demand", "internal", "dpv:ServiceOptimisation"),
		"allowed": true, "reason": "used inside the co-op",
	},
	{
		"name": "generation sharer keeps demand inside",
		"input": _q("green", "generation_sharer", {}, "demand", "open_data", "dpv:PublicBenefit"),
		"allowed": false, "reason": "Generation sharer persona",
	},
	{
		"name": "generation sharer publishes generation",
		"input": _q("red", "generation_sharer", {}, "generation", "open_data", "dpv:PublicBenefit"),
		"allowed": true, "reason": "published as open data",
	},
	{
		"name": "unknown persona refuses even internal use",
		"input": _q("green", "everything_goes", {}, "demand", "internal", "dpv:ServiceProvision"),
		"allowed": false, "reason": "persona is not one the co-op offers",
	},
	{
		"name": "unknown level",
		"input": _q("blue", "", {}, "demand", "internal", "dpv:ServiceProvision"),
		"allowed": false, "reason": "green, amber or red",
	},
	{
		"name": "unknown dataset",
		"input": _q("green", "", {}, "gas", "internal", "dpv:ServiceProvision"),
		"allowed": false, "reason": "dataset is not one the co-op holds",
	},
	{
		"name": "unknown flow",
		"input": _q("green", "", {}, "demand", "sold", "dpv:ServiceProvision"),
		"allowed": false, "reason": "five data flows",
	},
	{
		"name": "unknown purpose",
		"input": _q("green", "", {}, "demand", "internal", "dpv:Whatever"),
		"allowed": false, "reason": "purpose vocabulary",
	},
	{
		"name": "choices naming an unknown flow",
		"input": _q("amber", "", {"demand": ["internal", "everywhere"]}, "demand", "internal", "dpv:ServiceProvision"),
		"allowed": false, "reason": "map each dataset to a list of flows",
	},
	{
		"name": "choices that are not a list",
		"input": _q("amber", "", {"demand": "coop_to_coop"}, "demand", "coop_to_coop", "dpv:CommunityEnergyForecasting"),
		"allowed": false, "reason": "map each dataset to a list of flows",
	},
	{
		"name": "persona that is not a string",
		"input": _q("green", 7, {}, "demand", "internal", "dpv:ServiceProvision"),
		"allowed": false, "reason": "persona must be a name",
	},
	{
		"name": "profile missing",
		"input": {"dataset": "demand", "flow": "internal", "purpose": "dpv:ServiceProvision"},
		"allowed": false, "reason": "profile is missing",
	},
	{
		"name": "input not an object",
		"input": ["green"],
		"allowed": false, "reason": "must be a JSON object",
	},
]

_passes(c) if {
	d := consent.decision with input as c.input
	d.allowed == c.allowed
	some r in d.reasons
	contains(r, c.reason)
}

test_decision_table if {
	failures := {c.name | some c in _cases; not _passes(c)}
	print("failing cases:", failures)
	count(failures) == 0
}

test_decision_without_input_is_refused if {
	consent.decision.allowed == false
	consent.decision.reasons == ["The question is not a consent question: it must be a JSON object."]
}

test_invalid_input_reports_only_input_problems if {
	d := consent.decision with input as _q("blue", "", {}, "gas", "internal", "dpv:Marketing")
	d.allowed == false
	d.profile_level == ""
	count(d.reasons) == 2
}

test_persona_replaces_level if {
	d := consent.decision with input as _q("green", "privacy_first", {}, "demand", "internal", "dpv:ServiceProvision")
	d.profile_level == "red"
	d.persona == "privacy_first"
}

test_allowed_decision_has_one_reason if {
	d := consent.decision with input as _q("green", "", {}, "demand", "open_data", "dpv:PublicBenefit")
	d.allowed == true
	count(d.reasons) == 1
}

test_aims_come_from_data if {
	q := _q("green", "", {}, "demand", "third_party", "dpv:CommercialResearch")
	consent.decision.allowed == false with input as q
	consent.decision.allowed == true with input as q with data.coop.aims as ["dpv:CommercialResearch"]
}

test_personas_come_from_data if {
	q := _q("red", "night_owl", {}, "demand", "open_data", "dpv:PublicBenefit")
	consent.decision.allowed == false with input as q
	preset := {"title": "Night owl", "description": "", "version": "0.1.0", "level": "green", "flows": {}}
	consent.decision.allowed == true with input as q with data.consent.personas.night_owl as preset
}

test_every_persona_is_documented_and_valid if {
	every name, p in data.consent.personas {
		is_string(p.title)
		is_string(p.description)
		regex.match(`^[0-9]+\.[0-9]+\.[0-9]+$`, p.version)
		p.level in {"green", "amber", "red"}
		every dataset, flows in p.flows {
			data.datasets[dataset]
			every f in flows {
				data.flows[f]
			}
		}
		every flow, purposes in object.get(p, "purposes", {}) {
			data.flows[flow]
			every purpose in purposes {
				data.purposes[purpose]
			}
		}
		name != ""
	}
}

test_aims_are_in_the_vocabulary if {
	every aim in data.coop.aims {
		data.purposes[aim]
	}
}
