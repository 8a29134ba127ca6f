package coopfed.governance_test

import data.coopfed.governance

_jan := 1704067200 # 2024-01-01T00:00Z

_feb := 1706745600 # 2024-02-01T00:00Z

_now := 1710000000

_request := {
	"datasets": ["demand"],
	"fields": ["kwh", "member_count"],
	"granularity": "aggregate",
	"period": {"start": _jan, "end": _feb},
	"flow": "third_party",
	"purpose": {"code": "dpv:AcademicResearch", "description": "Evening peaks in community energy use"},
	"commitments": ["results_shared_with_members"],
}

_catalogue := {
	"demand": {"held": true, "period": {"start": 1672531200, "end": 1735689600}, "consenting_members": 12},
	"generation": {"held": true, "period": {"start": 1672531200, "end": 1735689600}, "consenting_members": 3},
	"export": {"held": false, "period": null, "consenting_members": 0},
}

_assessment(score, verified) := {
	"score": score, "verified": verified, "expires_at": _now + 86400,
	"dimensions": {}, "reasons": [],
}

_input(request, assessment) := {
	"request": request,
	"catalogue": _catalogue,
	"organisation": {"assessment": assessment},
	"now": _now,
}

_commercial := {"code": "dpv:CommercialResearch", "description": "Product research for a smart meter firm"}

_with(changes) := _input(object.union(_request, changes), _assessment(85, true))

# The input, with the catalogue's demand entry changed.
_with_demand(input_, changes) := object.union(input_, {"catalogue": {"demand": changes}})

# Each case: name, input, expected outcome, words one reason must contain.
_cases := [
	{
		"name": "verified university, aggregate research",
		"input": _with({}),
		"outcome": "approve", "reason": "reaches the approval threshold",
	},
	{
		"name": "individual data always goes to the board",
		"input": _with({"granularity": "individual", "fields": ["kwh", "member_ref"]}),
		"outcome": "refer", "reason": "individual data always go to the board",
	},
	{
		"name": "unverified organisation is referred",
		"input": _input(_request, _assessment(85, false)),
		"outcome": "refer", "reason": "not verified yet",
	},
	{
		"name": "middling score is referred",
		"input": _input(_request, _assessment(45, true)),
		"outcome": "refer", "reason": "between the thresholds",
	},
	{
		"name": "weak organisation is rejected",
		"input": _input(_request, _assessment(20, true)),
		"outcome": "reject", "reason": "below the floor of 30",
	},
	{
		"name": "expired assessment is rejected",
		"input": _input(_request, object.union(_assessment(90, true), {"expires_at": _now})),
		"outcome": "reject", "reason": "no current assessment",
	},
	{
		# OPA orders true below every number, rego-cpp does not: only numbers are compared.
		"name": "an assessment expiring at true is not current",
		"input": _input(_request, object.union(_assessment(90, true), {"expires_at": true})),
		"outcome": "reject", "reason": "no current assessment",
	},
	{
		"name": "missing assessment is rejected",
		"input": object.remove(_input(_request, {}), ["organisation"]),
		"outcome": "reject", "reason": "no current assessment",
	},
	{
		"name": "selling data is never served",
		"input": _with({"purpose": {"code": "dpv:SellDataToThirdParties", "description": "We would like to sell it on"}}),
		"outcome": "reject", "reason": "never releases data for selling data",
	},
	{
		"name": "purpose without a description",
		"input": _with({"purpose": {"code": "dpv:AcademicResearch", "description": "  research  "}}),
		"outcome": "reject", "reason": "described in at least 10 characters",
	},
	{
		"name": "dataset not held",
		"input": _with({"datasets": ["export"]}),
		"outcome": "reject", "reason": "holds no electricity export data",
	},
	{
		"name": "dataset not in the catalogue",
		"input": _with({"datasets": ["gas"]}),
		"outcome": "reject", "reason": "no dataset called 'gas'",
	},
	{
		"name": "too few consenting members for an aggregate",
		"input": _with({"datasets": ["generation"]}),
		"outcome": "reject", "reason": "Only 3 members allow",
	},
	{
		"name": "period beyond the data held",
		"input": _with({"period": {"start": _jan, "end": 1767225600}}),
		"outcome": "reject", "reason": "not within the electricity demand data held",
	},
	{
		"name": "field not offered at the granularity",
		"input": _with({"fields": ["kwh", "member_ref"]}),
		"outcome": "reject", "reason": "'member_ref' is not offered in aggregate data",
	},
	{
		"name": "wrong flow",
		"input": _with({"flow": "open_data"}),
		"outcome": "reject", "reason": "Data requests are for the third_party flow",
	},
	{
		"name": "malformed period",
		"input": _with({"period": {"start": _feb, "end": _jan}}),
		"outcome": "reject", "reason": "The period must run",
	},
	{
		"name": "a field the co-op does not have",
		"input": _with({"fields": ["kwh", "voltage"]}),
		"outcome": "reject", "reason": "There is no field called 'voltage'",
	},
	{
		"name": "a flow that does not exist",
		"input": _with({"flow": "barter"}),
		"outcome": "reject", "reason": "flow, not 'barter'",
	},
	{
		"name": "unknown purpose code",
		"input": _with({"purpose": {"code": "dpv:Whatever", "description": "Something or other entirely"}}),
		"outcome": "reject", "reason": "purpose vocabulary",
	},
	{
		# Purpose (750 + 1000 + 600) / 100 = 23.5, rounded to 24.
		"name": "commercial research on individual data scores below the purpose floor",
		"input": _with({"granularity": "individual", "fields": ["kwh"], "purpose": _commercial}),
		"outcome": "reject", "reason": "The purpose scores 24, below the floor of 30",
	},
	{
		# Purpose 35.5 rounds to 36, overall (85 + 36) / 2 = 60.5 to 61: both engines round half up.
		"name": "a commercial purpose is referred",
		"input": _with({"purpose": _commercial}),
		"outcome": "refer", "reason": "The overall score of 61 lies between the thresholds",
	},
	{
		"name": "no fields",
		"input": _with({"fields": []}),
		"outcome": "reject", "reason": "at least one field",
	},
	{
		"name": "too long a period",
		"input": _with({"period": {"start": 1672531200, "end": 1672531200 + (732 * 86400)}}),
		"outcome": "reject", "reason": "A request may cover at most 731 days",
	},
	{
		"name": "a period beyond the data, dated in words",
		"input": _with({"period": {"start": 1721050200, "end": 1740787200}}),
		"outcome": "reject", "reason": "(2024-07-15 13:30 to 2025-03-01 00:00 UTC)",
	},
	{
		"name": "individual data no member consents to",
		"input": _with_demand(_with({"granularity": "individual", "fields": ["kwh"]}), {"consenting_members": 0}),
		"outcome": "reject", "reason": "No member allows their electricity demand data",
	},
	{
		"name": "datasets not a list",
		"input": _with({"datasets": "demand"}),
		"outcome": "reject", "reason": "one or more datasets, each once",
	},
	{
		"name": "a dataset twice",
		"input": _with({"datasets": ["demand", "demand"]}),
		"outcome": "reject", "reason": "one or more datasets, each once",
	},
	{
		"name": "a field without a name",
		"input": _with({"fields": ["kwh", ""]}),
		"outcome": "reject", "reason": "list of field names",
	},
	{
		"name": "unknown granularity",
		"input": _with({"granularity": "household"}),
		"outcome": "reject", "reason": "aggregate or individual",
	},
	{
		"name": "flow missing",
		"input": _input(object.remove(_request, ["flow"]), _assessment(85, true)),
		"outcome": "reject", "reason": "The flow must be named",
	},
	{
		"name": "commitments not a list",
		"input": _with({"commitments": "results_shared_with_members"}),
		"outcome": "reject", "reason": "commitments must be a list",
	},
	{
		"name": "period in fractional seconds",
		"input": _with({"period": {"start": _jan, "end": _feb + 0.5}}),
		"outcome": "reject", "reason": "The period must run",
	},
	{
		# 1800 * (2^53 + 1): a whole number of half-hours that 64-bit floating point cannot divide.
		"name": "period ending on a half-hour past 2^53 half-hours",
		"input": _with({"period": {"start": _jan, "end": 16212958658533787400}}),
		"outcome": "reject", "reason": "before the year 10000",
	},
	{
		"name": "a time past 2^63",
		"input": object.union(_with({}), {"now": 1000000000000000000000000000000}),
		"outcome": "reject", "reason": "The time of the decision (now, unix seconds) is missing",
	},
	{
		"name": "a catalogue counting a fraction of a member",
		"input": _with_demand(_with({}), {"consenting_members": -7.5}),
		"outcome": "reject", "reason": "how many members consent (a whole number)",
	},
	{
		"name": "a catalogue whose period is not in seconds",
		"input": _with_demand(_with({}), {"period": {"start": "2023"}}),
		"outcome": "reject", "reason": "(whole unix seconds from 1970)",
	},
	{
		# OPA's floor(-1 / 86400) is 0, rego-cpp's -1: dates before 1970 would differ.
		"name": "a catalogue period ending before 1970",
		"input": _with_demand(_with({}), {"period": {"end": -1}}),
		"outcome": "reject", "reason": "(whole unix seconds from 1970)",
	},
	{"name": "no input", "input": {}, "outcome": "reject", "reason": "missing or is not an object"},
]

_passes(c) if {
	d := governance.decision with input as c.input
	d.outcome == c.outcome
	d.proposed == c.outcome
	some r in d.reasons
	contains(r, c.reason)
}

test_decision_table if {
	failures := {c.name | some c in _cases; not _passes(c)}
	print("failing cases:", failures)
	count(failures) == 0
}

test_every_decision_carries_every_stage_and_dimension if {
	every c in _cases {
		d := governance.decision with input as c.input
		object.keys(d.stages) == {"requirement", "organisation", "purpose"}
		is_number(d.score)
		count(d.reasons) > 0
		d.stages.requirement.dimensions.held.reason
	}
	d := governance.decision with input as _with({})
	object.keys(d.stages.purpose.dimensions) == object.keys(data.governance.purpose.dimensions)
}

test_shadow_mode_refers_everything_and_keeps_the_proposal if {
	d := governance.decision with input as _with({}) with data.governance.shadow_mode as true
	d.outcome == "refer"
	d.proposed == "approve"
	d.shadow == true
	some r in d.reasons
	contains(r, "Shadow mode: the policy proposes to approve")
}

test_shadow_mode_refers_a_rejection_too if {
	d := governance.decision with input as _with({"datasets": ["gas"]}) with data.governance.shadow_mode as true
	d.outcome == "refer"
	d.proposed == "reject"
}

test_thresholds_come_from_data if {
	strict := {"approve": 95, "reject": 45}
	governance.decision.outcome == "refer" with input as _with({}) with data.governance.thresholds as strict
	stricter := {"approve": 99, "reject": 90}
	governance.decision.outcome == "reject" with input as _with({}) with data.governance.thresholds as stricter
}

test_score_weights_the_stages if {
	d := governance.decision with input as _with({})
	d.score == round(((85 * 50) + (d.stages.purpose.score * 50)) / 100)
	only_organisation := {"organisation": 100, "purpose": 0}
	d2 := governance.decision with input as _with({}) with data.governance.stage_weights as only_organisation
	d2.score == 85
}

test_grant_carries_k_from_policy_data if {
	d := governance.decision with input as _with({}) with data.coop.k_min as 9
	d.grant.min_group_size == 9
}

test_every_catalogue_entry_is_a_dataset if {
	every ds, entry in data.governance.catalogue {
		data.datasets[ds]
		every g in entry.granularities {
			g in {"aggregate", "individual"}
		}
	}
	every _, f in data.governance.fields {
		count(f.granularities) > 0
	}
}

test_weights_and_thresholds_are_whole_numbers if {
	every _, d in data.governance.organisation.dimensions {
		d.weight == round(d.weight)
	}
	every _, d in data.governance.purpose.dimensions {
		d.weight == round(d.weight)
	}
	data.governance.thresholds.reject < data.governance.thresholds.approve
	every p in data.governance.purpose.prohibited {
		data.purposes[p]
		not p in data.coop.aims
	}
}
