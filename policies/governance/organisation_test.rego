package coopfed.governance.organisation_test

import data.coopfed.governance.organisation

_now := 1710000000

_org(type, commitments, verified, completed, revoked) := {
	"organisation": {
		"type": type, "commitments": commitments, "verified": verified,
		"track_record": {"completed_grants": completed, "revoked_grants": revoked},
	},
	"now": _now,
}

# Each case: name, input, expected score, words one reason must contain.
_cases := [
	{
		"name": "verified university with commitments",
		"input": _org("university", ["not_for_profit", "open_publication"], true, 0, 0),
		"score": 76, "reason": "works not for profit; publishes its results openly: 55 points",
	},
	{
		"name": "every commitment caps ethos at 100",
		"input": _org(
			"cooperative",
			["not_for_profit", "open_publication", "ethics_approval", "data_minimisation"],
			true, 4, 0,
		),
		"score": 99, "reason": "completed 4 grants with the co-op, none revoked",
	},
	{
		"name": "unverified company",
		"input": _org("company", [], false, 0, 0),
		"score": 22, "reason": "has not verified who it is yet",
	},
	{
		"name": "a revoked grant zeroes the track record",
		"input": _org("university", [], true, 9, 1),
		"score": 52, "reason": "revoked 1 of its grants",
	},
	{
		"name": "unknown type scores nothing for type",
		"input": _org("secret_society", [], true, 0, 0),
		"score": 35, "reason": "'secret_society' is not one the co-op recognises",
	},
	{
		"name": "unknown commitments are ignored",
		"input": _org("charity", ["world_peace"], true, 0, 0),
		"score": 59, "reason": "declares none of the commitments",
	},
	{
		"name": "malformed track record",
		"input": {
			"organisation": {
				"type": "university", "commitments": [], "verified": true,
				"track_record": {"completed_grants": -1, "revoked_grants": 0},
			},
			"now": _now,
		},
		"score": 0, "reason": "track record must count",
	},
	{
		"name": "type not a name",
		"input": _org(7, [], true, 0, 0),
		"score": 0, "reason": "type must be named",
	},
	{
		"name": "verification not true or false",
		"input": _org("university", [], "yes", 0, 0),
		"score": 0, "reason": "verification must be true or false",
	},
	{
		"name": "commitments not a list",
		"input": _org("university", "not_for_profit", true, 0, 0),
		"score": 0, "reason": "commitments must be a list",
	},
	{
		"name": "a fraction of a grant",
		"input": _org("university", [], true, 1.5, 0),
		"score": 0, "reason": "track record must count",
	},
	{
		"name": "more grants than 2^63",
		"input": _org("university", [], true, 9223372036854775808, 0),
		"score": 0, "reason": "track record must count",
	},
	{
		"name": "a time past 2^63",
		"input": object.union(_org("university", [], true, 0, 0), {"now": 1000000000000000000000000000000}),
		"score": 0, "reason": "now, unix seconds",
	},
	{
		"name": "no time",
		"input": object.remove(_org("university", [], true, 0, 0), ["now"]),
		"score": 0, "reason": "now, unix seconds",
	},
	{"name": "no organisation", "input": {"now": _now}, "score": 0, "reason": "missing or is not an object"},
]

_passes(c) if {
	a := organisation.assessment with input as c.input
	a.score == c.score
	some r in a.reasons
	contains(r, c.reason)
}

test_assessment_table if {
	failures := {[c.name, a.score, a.reasons] |
		some c in _cases
		not _passes(c)
		a := organisation.assessment with input as c.input
	}
	print("failing cases:", failures)
	count(failures) == 0
}

test_verified_assessment_is_reusable_until_it_expires if {
	a := organisation.assessment with input as _org("university", [], true, 0, 0)
	a.reusable == true
	a.assessed_at == _now
	a.expires_at == _now + (data.governance.organisation.assessment_valid_days * 86400)
}

test_unverified_assessment_holds_for_one_request if {
	a := organisation.assessment with input as _org("university", [], false, 0, 0)
	a.reusable == false
	a.expires_at == _now
}

test_every_dimension_is_reported_with_weight_and_reason if {
	a := organisation.assessment with input as _org("council", ["ethics_approval"], true, 2, 0)
	object.keys(a.dimensions) == {"type", "ethos", "track_record", "verification"}
	every _, d in a.dimensions {
		is_number(d.score)
		is_number(d.weight)
		is_string(d.reason)
	}
}

test_weights_come_from_data if {
	only_type := {
		"type": {"title": "Type", "weight": 1},
		"ethos": {"title": "Ethos", "weight": 0},
		"track_record": {"title": "Track record", "weight": 0},
		"verification": {"title": "Verification", "weight": 0},
	}
	a := organisation.assessment with input as _org("council", [], false, 0, 0)
		with data.governance.organisation.dimensions as only_type
	a.score == 90
}
