# METADATA
# title: Governance stage 3 - the purpose
# description: |
#   Scores the purpose of a request, coded with the co-op's purpose vocabulary (W3C DPV
#   style), on the dimensions and weights set in policy data: alignment with the co-op's
#   aims, public benefit, value returned to members, and risk to members. Some purposes are
#   never served; a purpose must also be described in words.
# scope: package
package coopfed.governance.purpose

import data.coopfed.governance.request
import data.coopfed.governance.scores

_conf := data.governance.purpose

_req := request.body

_code := _req.purpose.code

_label := data.purposes[_code].label

_day := 86400

# METADATA
# title: Stage 3 result
# description: '{"score": 0-100, "dimensions": {...}, "blocked": bool, "reasons": [string]}'
result := {
	"score": _score,
	"dimensions": _dimensions,
	"blocked": blocked,
	"reasons": sort(_reasons),
}

default blocked := false

blocked if count(blocks) > 0

# Why the purpose can never be served, whatever it scores.
blocks contains msg if {
	request.valid
	_code in _conf.prohibited
	msg := concat("", ["The co-op never releases data for ", _label, "."])
}

blocks contains msg if {
	request.valid
	count(trim_space(object.get(_req.purpose, "description", ""))) < _conf.min_description_length
	msg := concat("", [
		"The purpose must be described in at least ", scores.n(_conf.min_description_length),
		" characters.",
	])
}

default _dimensions := {}

# Each dimension the co-op set (title, weight) with its score and reason for this purpose.
_dimensions := {name: object.union(conf, _dimension[name]) | some name, conf in _conf.dimensions} if request.valid

default _score := 0

_score := scores.weighted(_dimensions) if request.valid

_reasons contains concat("", ["The purpose scores ", scores.n(_score), " out of 100."]) if request.valid

_reasons contains msg if some msg in blocks

_reasons contains scores.line(d) if some d in _dimensions

# --- dimensions ---------------------------------------------------------------------------

_the_purpose := concat("", ["The purpose (", _label, ")"])

_aligned if _code in data.coop.aims

_dimension["alignment"] := {"score": 100, "reason": concat("", [_the_purpose, " is among the co-op's aims."])} if {
	request.valid
	_aligned
}

_dimension["alignment"] := {"score": 0, "reason": concat("", [_the_purpose, " is not among the co-op's aims."])} if {
	request.valid
	not _aligned
}

_dimension["public_benefit"] := {"score": score, "reason": msg} if {
	request.valid
	score := object.get(_conf.public_benefit.scores, _code, _conf.public_benefit.default)
	msg := concat("", [_the_purpose, " scores ", scores.n(score), " for public benefit."])
}

_commits_to_members if _conf.value_to_members.commitment in object.get(_req, "commitments", [])

_base_value := object.get(_conf.value_to_members.scores, _code, _conf.value_to_members.default)

_dimension["value_to_members"] := {"score": _base_value, "reason": msg} if {
	request.valid
	not _commits_to_members
	msg := concat("", [_the_purpose, " scores ", scores.n(_base_value), " for the value it returns to members."])
}

_dimension["value_to_members"] := {"score": score, "reason": msg} if {
	request.valid
	_commits_to_members
	score := scores.capped(_base_value + _conf.value_to_members.commitment_points)
	msg := concat("", [
		_the_purpose, " scores ", scores.n(score),
		" for the value it returns to members, with the promise to share results with them.",
	])
}

_long if _req.period.end - _req.period.start > _conf.risk.long_period_days * _day

_granularity_risk := _conf.risk[_req.granularity]

_dimension["risk"] := {"score": _granularity_risk, "reason": msg} if {
	request.valid
	not _long
	msg := concat("", [
		"Releasing ", _req.granularity, " data over this period scores ", scores.n(_granularity_risk),
		" for safety.",
	])
}

_dimension["risk"] := {"score": score, "reason": msg} if {
	request.valid
	_long
	score := scores.floored(_granularity_risk - _conf.risk.long_period_penalty)
	msg := concat("", [
		"Releasing ", _req.granularity, " data over more than ", scores.n(_conf.risk.long_period_days),
		" days scores ", scores.n(score), " for safety.",
	])
}
