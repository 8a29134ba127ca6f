package coopfed.governance.purpose_test

import data.coopfed.governance.purpose

_base := {
	"datasets": ["demand"], "fields": ["kwh"], "granularity": "aggregate",
	"period": {"start": 1704067200, "end": 1706745600}, "flow": "third_party",
	"purpose": {"code": "dpv:PublicBenefit", "description": "Planning where the council puts new substations"},
	"commitments": [],
}

_q(changes) := {"request": object.union(_base, changes), "catalogue": {}, "now": 1710000000}

_score(changes) := s if {
	s := purpose.result.score with input as _q(changes)
}

_dimension(changes, name) := s if {
	s := purpose.result.dimensions[name].score with input as _q(changes)
}

test_public_benefit_planning_scores_high if {
	_score({}) == 90
	not purpose.result.blocked with input as _q({})
}

test_alignment_follows_the_coops_aims if {
	_dimension({}, "alignment") == 100
	commercial := {"code": "dpv:CommercialResearch", "description": "Product research for a smart meter firm"}
	_dimension({"purpose": commercial}, "alignment") == 0
}

test_sharing_results_with_members_adds_value if {
	without := _dimension({}, "value_to_members")
	with_promise := _dimension({"commitments": ["results_shared_with_members"]}, "value_to_members")
	with_promise == without + data.governance.purpose.value_to_members.commitment_points
}

test_individual_and_long_requests_are_riskier if {
	aggregate := _dimension({}, "risk")
	individual := _dimension({"granularity": "individual"}, "risk")
	individual < aggregate
	long := _dimension({"period": {"start": 1672531200, "end": 1706745600}}, "risk")
	long == aggregate - data.governance.purpose.risk.long_period_penalty
}

test_prohibited_purposes_are_blocked if {
	every code in data.governance.purpose.prohibited {
		purpose.result.blocked with input as _q({"purpose": {"code": code, "description": "A description long enough"}})
	}
}

test_a_purpose_must_be_described if {
	r := purpose.result with input as _q({"purpose": {"code": "dpv:PublicBenefit", "description": "maps"}})
	r.blocked
	some msg in r.reasons
	contains(msg, "described in at least")
}
