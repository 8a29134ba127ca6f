package coopfed.ledger.settlement_test

import data.coopfed.ledger.settlement

_jan := 1704067200 # 2024-01-01T00:00:00Z

_span(start, end) := {"period_start": start, "period_end": end}

# Each case: name, input, the data.ledger changes it runs under, allowed, words one reason must contain.
_cases := [
	{
		"name": "a month on the default terms",
		"input": _span(_jan, _jan + (31 * 86400)),
		"data": {}, "allowed": true, "reason": "in proportion to each member's consumption",
	},
	{
		"name": "one half-hour",
		"input": _span(_jan, _jan + 1800),
		"data": {}, "allowed": true, "reason": "allowed at every consent level",
	},
	{
		"name": "off the half hour",
		"input": _span(_jan + 60, _jan + 1800),
		"data": {}, "allowed": false, "reason": "on the half hour",
	},
	{
		"name": "backwards",
		"input": _span(_jan + 1800, _jan),
		"data": {}, "allowed": false, "reason": "must end after it starts",
	},
	{
		"name": "empty",
		"input": _span(_jan, _jan),
		"data": {}, "allowed": false, "reason": "must end after it starts",
	},
	{
		"name": "too long",
		"input": _span(_jan, _jan + (93 * 86400)),
		"data": {}, "allowed": false, "reason": "at most 92 days",
	},
	{
		"name": "text instead of a start",
		"input": _span("2024-01-01", _jan),
		"data": {}, "allowed": false, "reason": "whole unix seconds",
	},
	{
		"name": "a fraction of a second",
		"input": _span(_jan + 0.5, _jan + 1800),
		"data": {}, "allowed": false, "reason": "whole unix seconds",
	},
	{
		"name": "negative start",
		"input": _span(-1800, _jan),
		"data": {}, "allowed": false, "reason": "whole unix seconds",
	},
	{
		"name": "no input at all",
		"input": {},
		"data": {}, "allowed": false, "reason": "needs a period start and end",
	},
	{
		"name": "beyond 2^53",
		"input": _span(_jan, 1800 * 9007199254740993),
		"data": {}, "allowed": false, "reason": "whole unix seconds",
	},
]

# Terms in data the board may get wrong; each against a valid month.
_data_cases := [
	{
		"name": "equal shares", "data": {"key": "equal"},
		"allowed": true, "reason": "in equal shares",
	},
	{
		"name": "priority with members", "data": {"key": "priority", "priority_members": ["m-1"]},
		"allowed": true, "reason": "first to the members the co-op named",
	},
	{
		"name": "priority without members", "data": {"key": "priority"},
		"allowed": false, "reason": "needs the members the co-op named",
	},
	{
		"name": "static shares", "data": {"key": "static", "static_shares": {"m-1": 60, "m-2": 40}},
		"allowed": true, "reason": "fixed percentages",
	},
	{
		"name": "static shares over 100", "data": {"key": "static", "static_shares": {"m-1": 60, "m-2": 41}},
		"allowed": false, "reason": "100 at most",
	},
	{
		"name": "unknown key", "data": {"key": "lottery"},
		"allowed": false, "reason": "'lottery' is not one the ledger knows",
	},
	{
		"name": "local dearer than the grid",
		"data": {"prices_pence_per_kwh": {"local": 30, "grid_import": 28, "grid_export": 5}},
		"allowed": false, "reason": "must lie between",
	},
	{
		"name": "a negative price",
		"data": {"prices_pence_per_kwh": {"local": 10, "grid_import": 28, "grid_export": -1}},
		"allowed": false, "reason": "grid_export price must be a number",
	},
	{
		"name": "no cut-off", "data": {"cutoff_days": 0},
		"allowed": false, "reason": "cut-off for late readings",
	},
]

_month := _span(_jan, _jan + (31 * 86400))

_answer(c) := answer if {
	answer := settlement.terms with input as c.input
}

_ok(c, answer) if {
	answer.allowed == c.allowed
	some reason in answer.reasons
	contains(reason, c.reason)
}

test_cases if {
	failed := [c.name | some c in _cases; not _ok(c, _answer(c))]
	count(failed) == 0
}

test_data_cases if {
	failed := [c.name |
		some c in _data_cases
		answer := settlement.terms with input as _month with data.ledger as object.union(data.ledger, c.data)
		not _ok(c, answer)
	]
	count(failed) == 0
}

test_settlement_is_internal_use if {
	settlement.terms.flow == "internal" with input as _month
}

test_reasons_are_sorted_words if {
	answer := settlement.terms with input as {}
	count(answer.reasons) == 1
	not answer.allowed
}
