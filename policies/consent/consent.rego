# METADATA
# title: Consent
# description: |
#   Decides, for one consent profile, whether one dataset may be released on one flow
#   for one purpose, and says why in plain words. Levels: red allows only internal use;
#   green allows every flow; amber allows the flows the member chose per dataset. Every
#   release must serve a purpose within the co-op's aims. A persona replaces the level
#   and choices with its preset, and may narrow the purposes allowed per flow.
# scope: package
package coopfed.consent

# METADATA
# title: Consent decision
# description: |
#   {"allowed": bool, "reasons": [string], "profile_level": string, "persona": string}.
#   Always defined; input that is not a well-formed consent question is refused.
# entrypoint: true
decision := {
	"allowed": allowed,
	"reasons": sort(reasons),
	"profile_level": _level_out,
	"persona": _persona_out,
}

default allowed := false

# Fail closed: allow only when every part of the question is positively known.
allowed if {
	_valid
	_level in _levels
	_dataset_known
	_flow_known
	_purpose_known
	count(_refusals) == 0
}

# Input problems come first and alone: nothing else can be said about a malformed question.
reasons contains msg if some msg in _errors

reasons contains msg if some msg in _refusals

reasons contains msg if {
	allowed
	msg := concat("", [
		_basis, ", so ", data.datasets[input.dataset].title, " data may be ",
		data.flows[input.flow].phrase, " for ", data.purposes[input.purpose].label, ".",
	])
}

# --- input validation ---------------------------------------------------------------------

_levels := {"green", "amber", "red"}

_valid if count(_errors) == 0

# Checks are named rules and negated as `not _rule`. Inline, `not f(input.x)` would differ
# between engines when input.x is missing: OPA hoists input.x out of the negation, so the
# whole body fails and no reason is given; rego-cpp negates and gives one.
_input_is_object if is_object(input)

_level_known if _profile.level in _levels

_dataset_known if data.datasets[input.dataset]

_flow_known if data.flows[input.flow]

_purpose_known if data.purposes[input.purpose]

_persona_well_formed if is_string(object.get(_profile, "persona", ""))

_profile := input.profile if is_object(input.profile)

_errors contains "The question is not a consent question: it must be a JSON object." if {
	not _input_is_object
}

_errors contains "The consent profile is missing." if {
	_input_is_object
	not _profile
}

_errors contains "The consent level must be green, amber or red." if {
	_profile
	not _level_known
}

_errors contains "The persona must be a name or left empty." if {
	_profile
	not _persona_well_formed
}

_errors contains "The consent choices must map each dataset to a list of flows." if {
	_profile
	not _choices_well_formed
}

_errors contains msg if {
	_input_is_object
	not _dataset_known
	msg := concat("", ["The dataset is not one the co-op holds (", _names(data.datasets), ")."])
}

_errors contains msg if {
	_input_is_object
	not _flow_known
	msg := concat("", ["The flow is not one of the five data flows (", _names(data.flows), ")."])
}

_errors contains "The purpose is not in the co-op's purpose vocabulary." if {
	_input_is_object
	not _purpose_known
}

# Messages are built with concat, not sprintf: rego-cpp (the embedded engine) wraps strings
# that a builtin returned (concat, upper, ...) in quotes when sprintf formats them with %s.
_names(catalogue) := concat(", ", sort(object.keys(catalogue)))

_raw_choices := object.get(_profile, "choices", {})

_choices_well_formed if {
	is_object(_raw_choices)
	every dataset, flows in _raw_choices {
		data.datasets[dataset]
		is_array(flows)
		every flow in flows {
			data.flows[flow]
		}
	}
}

# --- the effective profile: the member's own settings, or the persona's preset ------------

_persona_name := object.get(_profile, "persona", "")

_preset := data.consent.personas[_persona_name] if _persona_name != ""

_level := _preset.level if _preset

_level := _profile.level if _persona_name == ""

_flows := _preset.flows if _preset

_flows := _raw_choices if _persona_name == ""

default _level_out := ""

_level_out := _level if _valid

_flow_chosen if input.flow in object.get(_flows, input.dataset, [])

_purpose_in_aims if input.purpose in data.coop.aims

default _persona_out := ""

_persona_out := _persona_name if _preset

_basis := concat("", ["The ", _preset.title, " persona sets consent to ", _level]) if _preset

_basis := concat("", ["Consent is ", _level]) if _persona_name == ""

# --- refusals, each with its reason -------------------------------------------------------

_refusals contains "The chosen persona is not one the co-op offers, so nothing is shared." if {
	_valid
	_persona_name != ""
	not _preset
}

_refusals contains msg if {
	_valid
	_level == "red"
	input.flow != "internal"
	msg := concat("", [
		_basis, ", so ", data.datasets[input.dataset].title,
		" data may only be used inside the co-op, not ", data.flows[input.flow].phrase, ".",
	])
}

_refusals contains msg if {
	_valid
	_level == "amber"
	input.flow != "internal"
	not _flow_chosen
	msg := concat("", [
		_basis, ", which does not allow ", data.datasets[input.dataset].title,
		" data to be ", data.flows[input.flow].phrase, ".",
	])
}

_refusals contains msg if {
	_valid
	not _purpose_in_aims
	msg := concat("", [
		"The purpose '", data.purposes[input.purpose].label,
		"' is not among the co-op's aims, so no data is released for it.",
	])
}

_refusals contains msg if {
	_valid
	purposes := _preset.purposes[input.flow]
	not input.purpose in purposes
	msg := concat("", [
		"The ", _preset.title, " persona allows data to be ", data.flows[input.flow].phrase,
		" only for: ", concat(", ", [data.purposes[p].label | some p in purposes]), ".",
	])
}
