package coopfed.federation.alignment_test

import data.coopfed.federation.alignment

_governance := {
	"legal_form": "cooperative",
	"decision_making": "one_member_one_vote",
	"consent_model": "traffic_light",
	"min_group_size": 5,
	"policy_review": "technical_board",
}

_aims := ["dpv:CommunityEnergyForecasting", "dpv:ServiceOptimisation", "dpv:PublicBenefit"]

_peer(aims, governance) := {
	"coop_id": "coop-b.example",
	"name": "Bee Co-op",
	"aims": aims,
	"governance": governance,
	"policy_revision": "2025.1",
	"policy_hash": "ab12",
	"datasets": ["demand", "generation", "export"],
}

_with(key, value) := object.union(_governance, {key: value})

# Each case: a name, the input, whether the peer is aligned, and words one reason must contain.
_cases := [
	{
		"name": "same aims and governance",
		"input": {"peer": _peer(_aims, _governance)},
		"aligned": true, "reason": "shares 3 of this co-op's aims",
	},
	{
		"name": "governance described when aligned",
		"input": {"peer": _peer(_aims, _governance)},
		"aligned": true, "reason": "a co-operative run on one member, one vote",
	},
	{
		"name": "community benefit society is accepted",
		"input": {"peer": _peer(_aims, _with("legal_form", "community_benefit_society"))},
		"aligned": true, "reason": "a community benefit society",
	},
	{
		"name": "a larger k is fine",
		"input": {"peer": _peer(_aims, _with("min_group_size", 10))},
		"aligned": true, "reason": "no group smaller than 10 members",
	},
	{
		"name": "forecasting is required",
		"input": {"peer": _peer(["dpv:ServiceOptimisation", "dpv:PublicBenefit", "dpv:AcademicResearch"], _governance)},
		"aligned": false, "reason": "does not pursue community energy forecasting",
	},
	{
		"name": "too few shared aims",
		"input": {"peer": _peer(["dpv:CommunityEnergyForecasting", "dpv:CommercialResearch"], _governance)},
		"aligned": false, "reason": "shares 1 of this co-op's aims; at least 3",
	},
	{
		"name": "a prohibited aim",
		"input": {"peer": _peer(array.concat(_aims, ["dpv:SellDataToThirdParties"]), _governance)},
		"aligned": false, "reason": "pursues selling data, which this co-op never shares data for",
	},
	{
		"name": "an unknown aim is named as written",
		"input": {"peer": _peer(["dpv:CommunityEnergyForecasting", "x:Unknown"], _governance)},
		"aligned": false, "reason": "shares 1 of",
	},
	{
		"name": "a company is not a co-operative",
		"input": {"peer": _peer(_aims, _with("legal_form", "company"))},
		"aligned": false, "reason": "organised as 'company'",
	},
	{
		"name": "shareholder voting",
		"input": {"peer": _peer(_aims, _with("decision_making", "one_share_one_vote"))},
		"aligned": false, "reason": "decides by 'one_share_one_vote'",
	},
	{
		"name": "opt-out consent",
		"input": {"peer": _peer(_aims, _with("consent_model", "opt_out"))},
		"aligned": false, "reason": "consent model 'opt_out'",
	},
	{
		"name": "small groups",
		"input": {"peer": _peer(_aims, _with("min_group_size", 2))},
		"aligned": false, "reason": "releases groups of 2 members",
	},
	{
		"name": "aims not a list",
		"input": {"peer": _peer("dpv:PublicBenefit", _governance)},
		"aligned": false, "reason": "aims must be a list",
	},
	{
		"name": "aims holding a number",
		"input": {"peer": _peer(["dpv:PublicBenefit", 7], _governance)},
		"aligned": false, "reason": "aims must be a list",
	},
	{
		"name": "governance missing",
		"input": {"peer": object.remove(_peer(_aims, _governance), ["governance"])},
		"aligned": false, "reason": "governance summary is missing",
	},
	{
		"name": "k not a number",
		"input": {"peer": _peer(_aims, _with("min_group_size", "5"))},
		"aligned": false, "reason": "governance summary is missing or malformed",
	},
	{
		"name": "k a fraction",
		"input": {"peer": _peer(_aims, _with("min_group_size", 5.5))},
		"aligned": false, "reason": "governance summary is missing or malformed",
	},
	{
		"name": "k a negative fraction",
		"input": {"peer": _peer(_aims, _with("min_group_size", -7.5))},
		"aligned": false, "reason": "governance summary is missing or malformed",
	},
	{
		"name": "k past 2^63",
		"input": {"peer": _peer(_aims, _with("min_group_size", 1000000000000000000000000000000))},
		"aligned": false, "reason": "governance summary is missing or malformed",
	},
	{
		"name": "no name",
		"input": {"peer": object.remove(_peer(_aims, _governance), ["name"])},
		"aligned": false, "reason": "must name the co-op",
	},
	{
		"name": "manifest missing",
		"input": {},
		"aligned": false, "reason": "manifest is missing",
	},
	{
		"name": "input not an object",
		"input": ["coop-b"],
		"aligned": false, "reason": "must be a JSON object",
	},
]

_passes(c) if {
	d := alignment.decision with input as c.input
	d.aligned == c.aligned
	some r in d.reasons
	contains(r, c.reason)
}

test_alignment_table if {
	failures := {c.name | some c in _cases; not _passes(c)}
	print("failing cases:", failures)
	count(failures) == 0
}

test_offer_narrows_purposes_to_shared_aims if {
	d := alignment.decision with input as {"peer": _peer(_aims, _governance)}
	d.offer.purposes == ["dpv:CommunityEnergyForecasting", "dpv:PublicBenefit", "dpv:ServiceOptimisation"]
	d.offer.flows == ["coop_to_coop"]
	d.offer.granularities == ["aggregate"]
	d.offer.datasets == ["demand", "export", "generation"]
}

test_no_offer_unless_aligned if {
	d := alignment.decision with input as {"peer": _peer(_aims, _with("legal_form", "company"))}
	d.offer.datasets == []
	d.offer.purposes == []
}

test_every_refusal_is_reported if {
	bad := object.union(_governance, {"legal_form": "company", "min_group_size": 1})
	d := alignment.decision with input as {"peer": _peer(["dpv:Marketing"], bad)}
	count(d.reasons) == 5
}

test_malformed_input_reports_only_input_problems if {
	d := alignment.decision with input as {"peer": {"coop_id": 7, "aims": "x"}}
	d.aligned == false
	d.shared_aims == []
	every r in d.reasons {
		startswith(r, "The peer's")
	}
}

test_federation_values_come_from_data if {
	d := alignment.decision with input as {"peer": _peer(_aims, _with("legal_form", "company"))}
		with data.federation.alignment.legal_forms as {"company": "a company"}
	d.aligned == true
}
