package coopfed.federation.grant_test

import data.coopfed.federation.grant

_governance := {
	"legal_form": "cooperative",
	"decision_making": "one_member_one_vote",
	"consent_model": "traffic_light",
	"min_group_size": 5,
	"policy_review": "technical_board",
}

_peer := {
	"coop_id": "coop-b.example",
	"name": "Bee Co-op",
	"aims": ["dpv:CommunityEnergyForecasting", "dpv:ServiceOptimisation", "dpv:PublicBenefit"],
	"governance": _governance,
	"policy_revision": "2025.1",
	"policy_hash": "ab12",
	"datasets": ["demand", "generation", "export"],
}

_unaligned := object.union(_peer, {"governance": object.union(_governance, {"legal_form": "company"})})

_start := 1704067200 # 2024-01-01T00:00:00Z

_year := 31622400 # 366 days

_request := {
	"datasets": ["demand", "generation", "export"],
	"fields": [],
	"granularity": "aggregate",
	"flow": "coop_to_coop",
	"purpose": "dpv:CommunityEnergyForecasting",
	"period_start": _start,
	"period_end": _start + _year,
	"min_group_size": 0,
}

_ask(changes) := {"peer": _peer, "request": object.union(_request, changes)}

# Each case: a name, the input, whether it is allowed, and words one reason must contain.
_cases := [
	{
		"name": "a year of aggregates for forecasting",
		"input": _ask({}),
		"allowed": true, "reason": "Granted to Bee Co-op: demand, export, generation aggregates",
	},
	{
		"name": "one dataset, one field",
		"input": _ask({"datasets": ["generation"], "fields": ["kwh"]}),
		"allowed": true, "reason": "generation aggregates for community energy forecasting",
	},
	{
		"name": "a shared aim other than forecasting",
		"input": _ask({"purpose": "dpv:ServiceOptimisation"}),
		"allowed": true, "reason": "for improving the co-op's services",
	},
	{
		"name": "the peer's k when larger",
		"input": _ask({"min_group_size": 12}),
		"allowed": true, "reason": "no cell from fewer than 12 members",
	},
	{
		"name": "a three-digit k from the peer",
		"input": _ask({"min_group_size": 100}),
		"allowed": true, "reason": "no cell from fewer than 100 members",
	},
	{
		"name": "the co-op's k when the peer asks for less",
		"input": _ask({"min_group_size": 4}),
		"allowed": true, "reason": "no cell from fewer than 5 members",
	},
	{
		"name": "never below the co-op's k",
		"input": _ask({"min_group_size": 1}),
		"allowed": true, "reason": "no cell from fewer than 5 members",
	},
	{
		"name": "a peer that is not aligned hears why",
		"input": {"peer": _unaligned, "request": _request},
		"allowed": false, "reason": "organised as 'company'",
	},
	{
		"name": "individual data is not offered",
		"input": _ask({"granularity": "individual"}),
		"allowed": false, "reason": "granted only aggregate data",
	},
	{
		"name": "third party flow is not offered",
		"input": _ask({"flow": "third_party"}),
		"allowed": false, "reason": "only on the flow coop_to_coop",
	},
	{
		"name": "an unknown dataset",
		"input": _ask({"datasets": ["demand", "gas"]}),
		"allowed": false, "reason": "Datasets not offered to peers: gas",
	},
	{
		"name": "a field not offered",
		"input": _ask({"fields": ["member_ref"]}),
		"allowed": false, "reason": "Fields not offered to peers: member_ref",
	},
	{
		"name": "a purpose outside the offer",
		"input": _ask({"purpose": "dpv:AcademicResearch"}),
		"allowed": false, "reason": "'academic research' is not one both co-ops pursue",
	},
	{
		"name": "a purpose only this co-op pursues",
		"input": _ask({"purpose": "dpv:ResearchAndDevelopment"}),
		"allowed": false, "reason": "not one both co-ops pursue",
	},
	{
		"name": "a purpose outside the vocabulary",
		"input": _ask({"purpose": "x:Whatever"}),
		"allowed": false, "reason": "'x:Whatever'",
	},
	{
		"name": "too long a period",
		"input": _ask({"period_end": _start + (732 * 86400)}),
		"allowed": false, "reason": "longer than the 731 days",
	},
	{
		"name": "period off the half hour",
		"input": _ask({"period_start": _start + 60}),
		"allowed": false, "reason": "half-hour aligned",
	},
	{
		"name": "period in fractional seconds",
		"input": _ask({"period_end": (_start + _year) + 0.5}),
		"allowed": false, "reason": "half-hour aligned",
	},
	{
		"name": "period ending far beyond any data",
		"input": _ask({"period_end": 100000000000000000000}),
		"allowed": false, "reason": "end before the year 10000",
	},
	{
		# 1800 * (2^53 + 1): a whole number of half-hours that 64-bit floating point cannot divide.
		"name": "period ending on a half-hour past 2^53 half-hours",
		"input": _ask({"period_end": 16212958658533787400}),
		"allowed": false, "reason": "end before the year 10000",
	},
	{
		"name": "period reversed",
		"input": _ask({"period_end": _start}),
		"allowed": false, "reason": "start before end",
	},
	{
		"name": "no datasets",
		"input": _ask({"datasets": []}),
		"allowed": false, "reason": "at least one dataset",
	},
	{
		"name": "a dataset twice",
		"input": _ask({"datasets": ["demand", "demand"]}),
		"allowed": false, "reason": "each once",
	},
	{
		"name": "fields not a list",
		"input": _ask({"fields": "kwh"}),
		"allowed": false, "reason": "fields must be a list of names",
	},
	{
		"name": "a k past 2^63",
		"input": _ask({"min_group_size": 1000000000000000000000000000000}),
		"allowed": false, "reason": "minimum group size must be a whole number",
	},
	{
		"name": "negative k",
		"input": _ask({"min_group_size": -3}),
		"allowed": false, "reason": "minimum group size",
	},
	{
		"name": "fractional k",
		"input": _ask({"min_group_size": 7.5}),
		"allowed": false, "reason": "minimum group size must be a whole number",
	},
	{
		"name": "purpose missing",
		"input": {"peer": _peer, "request": object.remove(_request, ["purpose"])},
		"allowed": false, "reason": "purpose, flow and granularity",
	},
	{
		"name": "request missing",
		"input": {"peer": _peer},
		"allowed": false, "reason": "grant request is missing",
	},
]

_passes(c) if {
	d := grant.decision with input as c.input
	d.allowed == c.allowed
	some r in d.reasons
	contains(r, c.reason)
}

test_grant_table if {
	failures := {c.name | some c in _cases; not _passes(c)}
	print("failing cases:", failures)
	count(failures) == 0
}

test_allowed_grant_carries_scope_and_constraints if {
	d := grant.decision with input as _ask({"datasets": ["export", "demand"], "min_group_size": 7})
	d.scope == {
		"datasets": ["demand", "export"],
		"fields": ["kwh", "member_count"],
		"granularity": "aggregate",
		"flow": "coop_to_coop",
		"purpose": "dpv:CommunityEnergyForecasting",
		"period_start": _start,
		"period_end": _start + _year,
	}
	d.constraints == {"min_group_size": 7}
	d.ttl_seconds == 30 * 86400
}

test_refused_grant_carries_nothing if {
	d := grant.decision with input as _ask({"granularity": "individual"})
	d.scope == {}
	d.constraints == {}
	d.ttl_seconds == 0
}

test_noise_from_data_travels_with_the_grant if {
	noise := {"mechanism": "laplace", "epsilon": 1}
	d := grant.decision with input as _ask({}) with data.federation.grant.noise as noise
	d.constraints.noise == noise
}

test_unaligned_peer_gets_no_request_reasons if {
	d := grant.decision with input as {"peer": _unaligned, "request": object.union(_request, {"flow": "x"})}
	every r in d.reasons {
		not contains(r, "flow")
	}
}
