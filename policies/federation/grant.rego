# METADATA
# title: Federation grants
# description: |
#   Decides a peer co-op's request for a grant to aggregated flows. The peer must be aligned
#   (see alignment.rego); the request must stay within what the alignment decision offers:
#   flow coop_to_coop, aggregate granularity, offered datasets and fields, a purpose both co-ops
#   pursue, and a period no longer than data.federation.grant.max_period_days. An allowed
#   request gets the grant's scope and constraints: the smallest group released is the largest
#   of the co-op's own k, the federation's and the one the peer asked for.
# scope: package
package coopfed.federation.grant

import data.coopfed.federation.alignment

_conf := data.federation.grant

_day := 86400

_half_hour := 1800

# 10000-01-01T00:00:00Z in unix seconds. Later instants are refused: beyond 2^53 rego-cpp
# (the embedded engine) divides in 64-bit floating point and OPA exactly, so they would differ.
_year_10000 := 253402300800

# METADATA
# title: Grant decision
# description: |
#   {"allowed": bool, "reasons": [string], "scope": {...}, "constraints": {"min_group_size",
#   ["noise"]}, "ttl_seconds": int}; scope, constraints and ttl are empty unless allowed.
#   Input: {"peer": <manifest as JSON>, "request": {"datasets", "fields", "granularity",
#   "flow", "purpose", "period_start", "period_end", "min_group_size"}}.
# entrypoint: true
decision := {
	"allowed": allowed,
	"reasons": sort(reasons),
	"scope": _scope,
	"constraints": _constraints,
	"ttl_seconds": _ttl,
}

default allowed := false

allowed if {
	_align.aligned
	_valid
	count(_refusals) == 0
}

_align := alignment.decision

# The peer's own alignment reasons come first: a peer that is not aligned is told why.
reasons contains msg if {
	not _align.aligned
	some msg in _align.reasons
}

reasons contains msg if {
	_align.aligned
	some msg in _errors
}

reasons contains msg if {
	_align.aligned
	some msg in _refusals
}

reasons contains msg if {
	allowed
	msg := concat("", [
		"Granted to ", input.peer.name, ": ", concat(", ", sort(_req.datasets)), " aggregates for ",
		data.purposes[_req.purpose].label, ", no cell from fewer than ", format_int(_k, 10), " members.",
	])
}

# --- input validation ---------------------------------------------------------------------

_req := input.request if is_object(input.request)

_valid if count(_errors) == 0

_strings(xs) if {
	is_array(xs)
	every x in xs {
		is_string(x)
	}
}

_datasets_well_formed if {
	_strings(_req.datasets)
	count(_req.datasets) > 0
	count({d | some d in _req.datasets}) == count(_req.datasets)
}

_fields_well_formed if _strings(_req.fields)

_period_well_formed if {
	is_number(_req.period_start)
	is_number(_req.period_end)
	_req.period_start >= 0
	_req.period_start < _req.period_end
	_req.period_end < _year_10000
	_on_half_hour(_req.period_start)
	_on_half_hour(_req.period_end)
}

# Not `t % 1800 == 0`: rego-cpp (the embedded engine) writes some remainders of 0 as "00",
# which equal no number. This also refuses fractional seconds, where OPA's % would fail.
_on_half_hour(t) if floor(t / _half_hour) * _half_hour == t

_asked_k := object.get(_req, "min_group_size", 0)

# A group size counts members: a whole number (format_int would drop a fraction from the
# words while the constraint kept it).
_k_well_formed if {
	_is_int(_asked_k)
	_asked_k >= 0
}

# A whole number both engines hold exactly (at most 2^53 either side of 0). Beyond, OPA
# computes exactly while rego-cpp overflows 64-bit integers or rounds, and answers differ.
_is_int(x) if {
	is_number(x)
	x <= 9007199254740992
	x >= -9007199254740992
	floor(x) == x
}

_scalars_well_formed if {
	is_string(_req.purpose)
	is_string(_req.flow)
	is_string(_req.granularity)
}

_errors contains "The grant request is missing." if not _req

_errors contains "The grant request must name at least one dataset, each once." if {
	_req
	not _datasets_well_formed
}

_errors contains "The grant request's fields must be a list of names." if {
	_req
	not _fields_well_formed
}

_errors contains msg if {
	_req
	not _period_well_formed
	msg := "The grant request's period must be half-hour aligned, start before end, end before the year 10000."
}

_errors contains "The grant request's minimum group size must be a whole number, 0 for the co-op's own." if {
	_req
	not _k_well_formed
}

_errors contains "The grant request must give its purpose, flow and granularity." if {
	_req
	not _scalars_well_formed
}

# --- refusals, each with its reason -------------------------------------------------------

_offer := _align.offer

_refusals contains msg if {
	_valid
	not _req.flow in _offer.flows
	msg := concat("", ["Peers are granted data only on the flow ", concat(", ", _offer.flows), "."])
}

_refusals contains msg if {
	_valid
	not _req.granularity in _offer.granularities
	msg := concat("", ["Peers are granted only ", concat(", ", _offer.granularities), " data."])
}

_refusals contains msg if {
	_valid
	missing := [d | some d in _req.datasets; not d in _offer.datasets]
	count(missing) > 0
	msg := concat("", [
		"Datasets not offered to peers: ", concat(", ", sort(missing)), " (offered: ",
		concat(", ", _offer.datasets), ").",
	])
}

_refusals contains msg if {
	_valid
	missing := [f | some f in _req.fields; not f in _offer.fields]
	count(missing) > 0
	msg := concat("", [
		"Fields not offered to peers: ", concat(", ", sort(missing)), " (offered: ",
		concat(", ", _offer.fields), ").",
	])
}

_refusals contains msg if {
	_valid
	not _req.purpose in _offer.purposes
	msg := concat("", [
		"The purpose '", _purpose_label, "' is not one both co-ops pursue and this co-op shares",
		" aggregates for (", concat(", ", sort([_label(p) | some p in _offer.purposes])), ").",
	])
}

_refusals contains msg if {
	_valid
	_req.period_end - _req.period_start > _conf.max_period_days * _day
	msg := concat("", [
		"The period is longer than the ", format_int(_conf.max_period_days, 10),
		" days one grant may cover.",
	])
}

_purpose_label := _label(_req.purpose)

# A code outside the shared vocabulary is shown as it is written.
_label(code) := data.purposes[code].label

_label(code) := code if not data.purposes[code]

# --- the grant ----------------------------------------------------------------------------

# The largest of the co-op's k, the federation's and the peer's ask: a peer may ask for more
# privacy, never for less.
_k := _largest({data.coop.k_min, _conf.min_group_size, _asked_k})

# The largest number in xs. Not max(): rego-cpp (the embedded engine) compares numbers there
# as text, so max({5, 12}) would be 5 and a peer asking for k=12 would get k=5.
_largest(xs) := x if {
	some x in xs
	every y in xs {
		x >= y
	}
}

_fields := sort(_offer.fields) if count(_req.fields) == 0

_fields := sort(_req.fields) if count(_req.fields) > 0

default _scope := {}

_scope := {
	"datasets": sort(_req.datasets),
	"fields": _fields,
	"granularity": _req.granularity,
	"flow": _req.flow,
	"purpose": _req.purpose,
	"period_start": _req.period_start,
	"period_end": _req.period_end,
} if allowed

default _constraints := {}

_constraints := {"min_group_size": _k} if {
	allowed
	not _conf.noise
}

_constraints := {"min_group_size": _k, "noise": _conf.noise} if {
	allowed
	_conf.noise
}

default _ttl := 0

_ttl := _conf.ttl_days * _day if allowed
