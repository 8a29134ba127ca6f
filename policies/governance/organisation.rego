# METADATA
# title: Governance stage 2 - the requesting organisation
# description: |
#   Scores an organisation once, on the dimensions and weights the co-op set in policy data:
#   its type, its ethos (commitments it declares), its track record with the co-op, and
#   whether the board verified it. A verified organisation's assessment is reused until it
#   expires; an unverified organisation's assessment holds for one request only.
# scope: package
package coopfed.governance.organisation

import data.coopfed.governance.scores

_conf := data.governance.organisation

_org := input.organisation

_day := 86400

# METADATA
# title: Organisation assessment
# description: |
#   {"score": 0-100, "dimensions": {name: {"score", "weight", "title", "reason"}}, "verified": bool,
#   "reusable": bool, "assessed_at": unix, "expires_at": unix, "reasons": [string]}
# entrypoint: true
assessment := {
	"score": _score,
	"dimensions": _dimensions,
	"verified": _verified,
	"reusable": _verified,
	"assessed_at": _now,
	"expires_at": _expires_at,
	"reasons": _reasons,
}

# A whole number both engines hold exactly (at most 2^53 either side of 0). Beyond, OPA
# computes exactly while rego-cpp overflows 64-bit integers or rounds, and answers differ.
_is_int(x) if {
	is_number(x)
	x <= 9007199254740992
	x >= -9007199254740992
	floor(x) == x
}

# Checks are named rules negated as `not _rule`: inline, `not f(input.x)` differs between
# engines when input.x is missing.
_org_is_object if is_object(_org)

_now_ok if _is_int(input.now)

default _now := 0

_now := input.now if _now_ok

_declared_verified if _org.verified == true

default _verified := false

_verified if {
	_valid
	_declared_verified
}

_expires_at := _now + (_conf.assessment_valid_days * _day) if _verified

_expires_at := _now if not _verified

# --- input checks -------------------------------------------------------------------------

_valid if count(_errors) == 0

_errors contains "The organisation is missing or is not an object." if not _org_is_object

_errors contains "The organisation's type must be named." if {
	_org_is_object
	not _type_ok
}

_errors contains "The organisation's verification must be true or false." if {
	_org_is_object
	not _verified_ok
}

_errors contains "The organisation's commitments must be a list of names." if {
	_org_is_object
	not _commitments_ok
}

_errors contains "The organisation's track record must count completed and revoked grants." if {
	_org_is_object
	not _track_record_ok
}

_errors contains "The time of the assessment (now, unix seconds) is missing." if not _now_ok

_type_ok if is_string(_org.type)

_verified_ok if is_boolean(_org.verified)

_commitments_ok if {
	is_array(_org.commitments)
	every c in _org.commitments {
		is_string(c)
	}
}

_track_record_ok if {
	_is_int(_org.track_record.completed_grants)
	_is_int(_org.track_record.revoked_grants)
	_org.track_record.completed_grants >= 0
	_org.track_record.revoked_grants >= 0
}

# --- dimensions ---------------------------------------------------------------------------

default _dimensions := {}

# Each dimension the co-op set (title, weight) with its score and reason for this organisation.
_dimensions := {name: object.union(conf, _dimension[name]) | some name, conf in _conf.dimensions} if _valid

_known_type if _conf.types[_org.type]

_dimension["type"] := {"score": t.score, "reason": msg} if {
	t := _conf.types[_org.type]
	msg := concat("", ["As a ", t.title, " it scores ", scores.n(t.score), " for its type."])
}

_dimension["type"] := {"score": 0, "reason": msg} if {
	_type_ok
	not _known_type
	msg := concat("", [
		"The type '", _org.type, "' is not one the co-op recognises (",
		concat(", ", sort(object.keys(_conf.types))), ").",
	])
}

_declared contains c if {
	some c in _org.commitments
	_conf.commitments[c]
}

_dimension["ethos"] := {"score": 0, "reason": "It declares none of the commitments the co-op values."} if {
	count(_declared) == 0
}

_dimension["ethos"] := {"score": score, "reason": msg} if {
	count(_declared) > 0
	score := scores.capped(sum([_conf.commitments[c].points | some c in _declared]))
	titles := [_conf.commitments[c].title | some c in sort(_declared)]
	msg := concat("", ["It declares that it ", concat("; ", titles), ": ", scores.n(score), " points."])
}

_completed := _org.track_record.completed_grants

_revoked := _org.track_record.revoked_grants

_dimension["track_record"] := {"score": 0, "reason": msg} if {
	_revoked > 0
	msg := concat("", ["The co-op has revoked ", scores.n(_revoked), " of its grants."])
}

_dimension["track_record"] := {"score": _conf.track_record.new, "reason": msg} if {
	_revoked == 0
	_completed == 0
	msg := "It has no completed grants with the co-op yet."
}

_dimension["track_record"] := {"score": score, "reason": msg} if {
	_revoked == 0
	_completed > 0
	score := scores.capped(_conf.track_record.base + (_conf.track_record.per_completed_grant * _completed))
	msg := concat("", ["It has completed ", scores.n(_completed), " grants with the co-op, none revoked."])
}

_dimension["verification"] := {"score": 100, "reason": "The co-op's board has verified who it is."} if {
	_declared_verified
}

_dimension["verification"] := {"score": 0, "reason": "The co-op's board has not verified who it is yet."} if {
	_verified_ok
	not _declared_verified
}

# --- score and reasons --------------------------------------------------------------------

default _score := 0

_score := scores.weighted(_dimensions) if _valid

_reasons := sort(_errors) if not _valid

_reasons := array.concat(
	[concat("", ["The organisation scores ", scores.n(_score), " out of 100."])],
	[scores.line(_dimensions[name]) | some name in sort(object.keys(_dimensions))],
) if _valid
