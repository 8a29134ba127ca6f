# METADATA
# title: Federation alignment
# description: |
#   Decides whether a neighbouring co-op is aligned with this one, from the manifest it
#   publishes: its aims (purpose codes) must include the aims the federation requires, share
#   enough of this co-op's aims and include none this co-op refuses to serve; its governance
#   (legal form, decision making, consent model, smallest group it releases) must be one this
#   co-op accepts. An aligned peer is offered the datasets, fields, granularities, flows and
#   purposes listed in data.federation.offer, purposes narrowed to the aims both co-ops share.
# scope: package
package coopfed.federation.alignment

_conf := data.federation.alignment

# METADATA
# title: Alignment decision
# description: |
#   {"aligned": bool, "reasons": [string], "shared_aims": [string], "offer": {"datasets",
#   "fields", "granularities", "flows", "purposes"}}. Always defined; the offer is empty
#   unless the peer is aligned. Input: {"peer": <manifest as JSON>}.
# entrypoint: true
decision := {
	"aligned": aligned,
	"reasons": sort(reasons),
	"shared_aims": sort(_shared_out),
	"offer": _offer,
}

default aligned := false

aligned if {
	_valid
	count(_refusals) == 0
}

reasons contains msg if some msg in _errors

reasons contains msg if some msg in _refusals

reasons contains msg if {
	aligned
	msg := concat("", [
		_peer.name, " shares ", format_int(count(_shared), 10), " of this co-op's aims: ",
		_labels(_shared), ".",
	])
}

reasons contains msg if {
	aligned
	msg := concat("", [
		_peer.name, " is ", _conf.legal_forms[_gov.legal_form], " run on ",
		_conf.decision_making[_gov.decision_making], ", with ", _conf.consent_models[_gov.consent_model],
		", releasing no group smaller than ", format_int(_gov.min_group_size, 10), " members.",
	])
}

# --- input validation ---------------------------------------------------------------------

_peer := input.peer if is_object(input.peer)

_gov := _peer.governance if is_object(_peer.governance)

_valid if count(_errors) == 0

_input_is_object if is_object(input)

_name_well_formed if {
	is_string(_peer.coop_id)
	_peer.coop_id != ""
	is_string(_peer.name)
	_peer.name != ""
}

_aims_well_formed if {
	is_array(_peer.aims)
	every aim in _peer.aims {
		is_string(aim)
	}
}

_governance_well_formed if {
	is_string(_gov.legal_form)
	is_string(_gov.decision_making)
	is_string(_gov.consent_model)
	_group_size_well_formed
}

# A group size counts members: a whole number, at least 0 (the words would drop a fraction,
# and format_int rounds a negative fraction differently in the two engines).
_group_size_well_formed if {
	_is_int(_gov.min_group_size)
	_gov.min_group_size >= 0
}

# A whole number both engines hold exactly (at most 2^53 either side of 0). Beyond, OPA
# computes exactly while rego-cpp overflows 64-bit integers or rounds, and answers differ.
_is_int(x) if {
	is_number(x)
	x <= 9007199254740992
	x >= -9007199254740992
	floor(x) == x
}

_errors contains "The question is not an alignment question: it must be a JSON object." if {
	not _input_is_object
}

_errors contains "The peer's manifest is missing." if {
	_input_is_object
	not _peer
}

_errors contains "The peer's manifest must name the co-op (coop_id and name)." if {
	_peer
	not _name_well_formed
}

_errors contains "The peer's aims must be a list of purpose codes." if {
	_peer
	not _aims_well_formed
}

_errors contains "The peer's governance summary is missing or malformed." if {
	_peer
	not _governance_well_formed
}

# --- aims ---------------------------------------------------------------------------------

_peer_aims := {aim | some aim in _peer.aims}

_shared contains aim if {
	some aim in data.coop.aims
	aim in _peer_aims
}

default _shared_out := []

_shared_out := [aim | some aim in _shared] if _valid

# A code outside the shared vocabulary is shown as it is written.
_label(code) := data.purposes[code].label

_label(code) := code if not data.purposes[code]

_labels(codes) := concat(", ", sort([_label(code) | some code in codes]))

_missing_required contains aim if {
	some aim in _conf.required_aims
	not aim in _peer_aims
}

_prohibited contains aim if {
	some aim in _conf.prohibited_aims
	aim in _peer_aims
}

# --- governance ---------------------------------------------------------------------------

_legal_form_accepted if _conf.legal_forms[_gov.legal_form]

_decision_making_accepted if _conf.decision_making[_gov.decision_making]

_consent_model_accepted if _conf.consent_models[_gov.consent_model]

_group_size_enough if _gov.min_group_size >= _conf.min_group_size

# --- refusals, each with its reason -------------------------------------------------------

_refusals contains msg if {
	_valid
	count(_missing_required) > 0
	msg := concat("", [
		_peer.name, " does not pursue ", _labels(_missing_required),
		", which the federation requires of every member co-op.",
	])
}

_refusals contains msg if {
	_valid
	count(_shared) < _conf.min_shared_aims
	msg := concat("", [
		_peer.name, " shares ", format_int(count(_shared), 10), " of this co-op's aims; at least ",
		format_int(_conf.min_shared_aims, 10), " are needed.",
	])
}

_refusals contains msg if {
	_valid
	count(_prohibited) > 0
	msg := concat("", [
		_peer.name, " pursues ", _labels(_prohibited), ", which this co-op never shares data for.",
	])
}

_refusals contains msg if {
	_valid
	not _legal_form_accepted
	msg := concat("", [
		_peer.name, " is organised as '", _gov.legal_form, "'; this co-op federates only with ",
		concat(" or ", sort([t | some t in _conf.legal_forms])), ".",
	])
}

_refusals contains msg if {
	_valid
	not _decision_making_accepted
	msg := concat("", [
		_peer.name, " decides by '", _gov.decision_making, "'; this co-op federates only with co-ops run on ",
		concat(" or ", sort([t | some t in _conf.decision_making])), ".",
	])
}

_refusals contains msg if {
	_valid
	not _consent_model_accepted
	msg := concat("", [
		_peer.name, " uses the consent model '", _gov.consent_model, "'; this co-op requires ",
		concat(" or ", sort([t | some t in _conf.consent_models])), ".",
	])
}

_refusals contains msg if {
	_valid
	not _group_size_enough
	msg := concat("", [
		_peer.name, " releases groups of ", format_int(_gov.min_group_size, 10),
		" members; this co-op requires at least ", format_int(_conf.min_group_size, 10), ".",
	])
}

# --- what an aligned peer may be granted --------------------------------------------------

default _offer := {"datasets": [], "fields": [], "granularities": [], "flows": [], "purposes": []}

_offer := {
	"datasets": sort(data.federation.offer.datasets),
	"fields": sort(data.federation.offer.fields),
	"granularities": sort(data.federation.offer.granularities),
	"flows": sort(data.federation.offer.flows),
	"purposes": sort([p | some p in data.federation.offer.purposes; p in _shared]),
} if aligned
