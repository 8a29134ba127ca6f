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

_is_int(x) if {
	is_number(x)
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

_request_is_object if is_object(input.request)

request := input.request if _request_is_object

valid if count(errors) == 0

errors contains "The data request is missing or is not an object." if not _request_is_object

errors contains "The request must name one or more datasets, each once." if {
	_request_is_object
	not _datasets_ok
}

_datasets_ok if {
	_strings(request.datasets)
	count(request.datasets) > 0
	_unique(request.datasets)
}

errors contains "The request's fields must be a list of field names, each once." if {
	_request_is_object
	not _fields_ok
}

_fields_ok if {
	_strings(request.fields)
	_unique(request.fields)
}

errors contains "The granularity must be aggregate or individual." if {
	_request_is_object
	not _granularity_ok
}

_granularity_ok if request.granularity in _granularities

errors contains "The period must run from a half-hour to a later half-hour (unix seconds)." if {
	_request_is_object
	not _period_ok
}

_period_ok if {
	_is_int(request.period.start)
	_is_int(request.period.end)
	request.period.start >= 0
	request.period.start < request.period.end
	_on_half_hour(request.period.start)
	_on_half_hour(request.period.end)
}

# Not `t % 1800 == 0`: rego-cpp (the embedded engine) gives some remainders of 0 as "00".
_on_half_hour(t) if floor(t / _half_hour) * _half_hour == t

errors contains "The flow must be named." if {
	_request_is_object
	not _flow_ok
}

_flow_ok if {
	is_string(request.flow)
	request.flow != ""
}

errors contains "The purpose must carry a code from the co-op's purpose vocabulary." if {
	_request_is_object
	not _purpose_ok
}

_purpose_ok if {
	is_string(request.purpose.code)
	data.purposes[request.purpose.code]
	is_string(object.get(request.purpose, "description", ""))
}

errors contains "The request's commitments must be a list of names." if {
	_request_is_object
	not _commitments_ok
}

_commitments_ok if _strings(object.get(request, "commitments", []))

_catalogue_ok if is_object(input.catalogue)

errors contains "The catalogue of the data held must be an object." if not _catalogue_ok

_now_ok if _is_int(input.now)

errors contains "The time of the decision (now, unix seconds) is missing." if not _now_ok
