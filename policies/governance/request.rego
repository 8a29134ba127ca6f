# METADATA
# title: Governance - the shape of a data request
# description: |
#   Checks that a data request is well formed before any stage scores it. The node refuses
#   malformed requests itself; these checks keep the policy safe for any input it is given.
#   Checks are named rules negated as `not _rule`: inline, `not f(input.x)` differs between
#   engines when input.x is missing.
# scope: package
package coopfed.governance.request

_granularities := {"aggregate", "individual"}

_half_hour := 1800

# 10000-01-01T00:00:00Z in unix seconds. Later instants are refused: beyond 2^53 rego-cpp
# (the embedded engine) divides in 64-bit floating point and OPA exactly, so they would differ.
_year_10000 := 253402300800

_request_is_object if is_object(input.request)

# The request, where it is an object (parts of it may still be malformed: see valid).
body := input.request if _request_is_object

valid if count(errors) == 0

# --- what is wrong with the input, each in words -------------------------------------------

errors contains "The data request is missing or is not an object." if not _request_is_object

errors contains "The request must name one or more datasets, each once." if {
	_request_is_object
	not _datasets_ok
}

errors contains "The request's fields must be a list of field names, each once." if {
	_request_is_object
	not _fields_ok
}

errors contains "The granularity must be aggregate or individual." if {
	_request_is_object
	not _granularity_ok
}

errors contains "The period must run from a half-hour to a later half-hour (unix seconds, before the year 10000)." if {
	_request_is_object
	not _period_ok
}

errors contains "The flow must be named." if {
	_request_is_object
	not _flow_ok
}

errors contains "The purpose must carry a code from the co-op's purpose vocabulary." if {
	_request_is_object
	not _purpose_ok
}

errors contains "The request's commitments must be a list of names." if {
	_request_is_object
	not _commitments_ok
}

errors contains "The catalogue of the data held must be an object." if not _catalogue_ok

errors contains msg if {
	_catalogue_ok
	not _catalogue_entries_ok
	msg := concat("", [
		"The catalogue must say of each dataset whether it is held and, if it is, over which period ",
		"(whole unix seconds from 1970) and how many members consent (a whole number).",
	])
}

errors contains "The time of the decision (now, unix seconds) is missing." if not _now_ok

# --- the checks ---------------------------------------------------------------------------

# A whole number both engines hold exactly (at most 2^53 either side of 0). Beyond, OPA
# computes exactly while rego-cpp overflows 64-bit integers or rounds, and answers differ.
_is_int(x) if {
	is_number(x)
	x <= 9007199254740992
	x >= -9007199254740992
	floor(x) == x
}

_strings(xs) if {
	is_array(xs)
	every x in xs {
		is_string(x)
		x != ""
	}
}

_unique(xs) if count({x | some x in xs}) == count(xs)

_datasets_ok if {
	_strings(body.datasets)
	count(body.datasets) > 0
	_unique(body.datasets)
}

_fields_ok if {
	_strings(body.fields)
	_unique(body.fields)
}

_granularity_ok if body.granularity in _granularities

_period_ok if {
	_is_int(body.period.start)
	_is_int(body.period.end)
	body.period.start >= 0
	body.period.start < body.period.end
	body.period.end < _year_10000
	_on_half_hour(body.period.start)
	_on_half_hour(body.period.end)
}

# Not `t % 1800 == 0`: rego-cpp (the embedded engine) gives some remainders of 0 as "00".
_on_half_hour(t) if floor(t / _half_hour) * _half_hour == t

_flow_ok if {
	is_string(body.flow)
	body.flow != ""
}

_purpose_ok if {
	is_string(body.purpose.code)
	data.purposes[body.purpose.code]
	is_string(object.get(body.purpose, "description", ""))
}

_commitments_ok if _strings(object.get(body, "commitments", []))

_catalogue_ok if is_object(input.catalogue)

# The node builds the catalogue; checked all the same, as its numbers are written out in reasons.
_catalogue_entries_ok if {
	every entry in input.catalogue {
		_catalogue_entry_ok(entry)
	}
}

_catalogue_entry_ok(entry) if entry.held == false

_catalogue_entry_ok(entry) if {
	entry.held == true
	_is_int(entry.period.start)
	_is_int(entry.period.end)
	entry.period.start >= 0 # scores.date writes instants from 1970 on
	entry.period.end >= 0
	_is_int(object.get(entry, "consenting_members", 0))
	object.get(entry, "consenting_members", 0) >= 0
}

_now_ok if _is_int(input.now)
