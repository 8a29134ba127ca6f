# METADATA
# title: Governance decision on a data request
# description: |
#   Combines the three stages of the co-op's governance model: the data requirement (a gate:
#   the data must be held and available), the requesting organisation (its assessment, made
#   once and passed in) and the purpose. The weighted score of the organisation and purpose
#   stages is compared with thresholds set in policy data: approve, reject, or refer to the
#   board. In shadow mode the policy only proposes and every request goes to the board.
# scope: package
package coopfed.governance

import data.coopfed.governance.purpose
import data.coopfed.governance.request
import data.coopfed.governance.requirement
import data.coopfed.governance.scores

_conf := data.governance

# METADATA
# title: Decision on a data request
# description: |
#   {"outcome", "proposed", "shadow", "score", "stages": {"requirement", "organisation", "purpose"},
#   "thresholds", "reasons": [string], "grant": {"ttl_days", "min_group_size"}}
# entrypoint: true
decision := {
	"outcome": outcome,
	"proposed": proposed,
	"shadow": shadow,
	"score": score,
	"stages": {
		"requirement": requirement.result,
		"organisation": _organisation_stage,
		"purpose": purpose.result,
	},
	"thresholds": _conf.thresholds,
	"reasons": _reasons,
	"grant": {"ttl_days": _conf.grant.ttl_days, "min_group_size": data.coop.k_min},
}

default shadow := false

shadow if _conf.shadow_mode == true

outcome := "refer" if shadow

outcome := proposed if not shadow

default proposed := "approve"

proposed := "reject" if count(_rejections) > 0

proposed := "refer" if {
	count(_rejections) == 0
	count(_referrals) > 0
}

# --- the organisation stage, from the assessment passed in ---------------------------------

_assessment := input.organisation.assessment

_assessment_ok if {
	is_number(_assessment.score)
	_assessment.score >= 0
	_assessment.score <= 100
	is_boolean(_assessment.verified)
	_fresh
}

_fresh if _assessment.verified == false

# Numbers only: the engines order values of different types differently (true > 4 or not).
_fresh if {
	_assessment.verified == true
	is_number(_assessment.expires_at)
	is_number(input.now)
	_assessment.expires_at > input.now
}

default _org_score := 0

_org_score := _assessment.score if _assessment_ok

_organisation_stage := {
	"score": _org_score,
	"verified": _assessment.verified,
	"dimensions": object.get(_assessment, "dimensions", {}),
	"reasons": object.get(_assessment, "reasons", []),
} if _assessment_ok

_organisation_stage := {"score": 0, "verified": false, "dimensions": {}, "reasons": [_no_assessment]} if {
	not _assessment_ok
}

_no_assessment := "The organisation has no current assessment."

# --- overall score ------------------------------------------------------------------------

_weights := _conf.stage_weights

default score := 0

score := round(_weighted_total / (_weights.organisation + _weights.purpose)) if request.valid

_weighted_total := (_org_score * _weights.organisation) + (purpose.result.score * _weights.purpose)

# --- why: rejections, referrals, approval ---------------------------------------------------

_rejections contains msg if some msg in request.errors

_rejections contains msg if {
	request.valid
	not requirement.passed
	some msg in requirement.result.reasons
}

_rejections contains msg if {
	request.valid
	some msg in purpose.blocks
}

_rejections contains _no_assessment if {
	request.valid
	not _assessment_ok
}

_rejections contains msg if {
	request.valid
	_assessment_ok
	_org_score < _conf.organisation.floor
	msg := concat("", [
		"The organisation scores ", scores.n(_org_score), ", below the floor of ",
		scores.n(_conf.organisation.floor), ".",
	])
}

_rejections contains msg if {
	request.valid
	purpose.result.score < _conf.purpose.floor
	msg := concat("", [
		"The purpose scores ", scores.n(purpose.result.score), ", below the floor of ",
		scores.n(_conf.purpose.floor), ".",
	])
}

_rejections contains msg if {
	request.valid
	score < _conf.thresholds.reject
	msg := concat("", [
		"The overall score of ", scores.n(score), " is below the rejection threshold of ",
		scores.n(_conf.thresholds.reject), ".",
	])
}

_referrals contains msg if {
	request.valid
	score >= _conf.thresholds.reject
	score < _conf.thresholds.approve
	msg := concat("", [
		"The overall score of ", scores.n(score), " lies between the thresholds (",
		scores.n(_conf.thresholds.reject), " to reject, ", scores.n(_conf.thresholds.approve),
		" to approve), so the board decides.",
	])
}

_referrals contains msg if {
	request.valid
	input.request.granularity in _conf.always_refer.granularities
	msg := concat("", ["Requests for ", input.request.granularity, " data always go to the board."])
}

_referrals contains "The organisation is not verified yet, so the board decides." if {
	_conf.always_refer.unverified_organisations == true
	_assessment_ok
	_assessment.verified == false
}

_approval := concat("", [
	"The overall score of ", scores.n(score), " reaches the approval threshold of ",
	scores.n(_conf.thresholds.approve), ".",
])

_because := _rejections if proposed == "reject"

_because := _referrals if proposed == "refer"

_because := {_approval} if proposed == "approve"

_shadow_note := {concat("", ["Shadow mode: the policy proposes to ", proposed, "; the board decides."])} if shadow

_shadow_note := set() if not shadow

_reasons := sort(_because | _shadow_note)
