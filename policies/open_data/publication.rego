# METADATA
# title: Open data - who contributes to a publication, and on what terms
# description: |
#   Decides, for one consent profile and one dataset, whether its members' data contributes to
#   the co-op's open-data publication (flow 5). The node first asks the consent policy about the
#   open-data flow for the publication's purpose (once per profile) and passes its decision in;
#   a profile contributes only where that decision allows it, the profile is not red, and the
#   co-op publishes the dataset. The terms (licence, purpose, datasets, k) are data, set by the
#   members like every other value.
# scope: package
package coopfed.open_data.publication

_conf := data.open_data

# METADATA
# title: Contribution
# description: |
#   {"allowed": bool, "reasons": [string]} for input {"profile": consent profile,
#   "dataset": string, "consent": the consent policy's decision}. Always defined; fails closed.
# entrypoint: true
contributes := {"allowed": _allowed, "reasons": sort(_reasons)}

# METADATA
# title: Publication terms
# description: |
#   {"licence": {"name", "path", "title"}, "purpose": string, "datasets": [string], "k": number,
#   "title": string, "description": string}: what every package carries.
# entrypoint: true
terms := {
	"licence": _conf.licence,
	"purpose": _conf.purpose,
	"datasets": sort(_conf.datasets),
	"k": _k,
	"title": _conf.title,
	"description": _conf.description,
}

# The co-op's k is a floor: open data may ask for larger groups, never smaller ones.
default _k := 0

_k := data.coop.k_min if data.coop.k_min >= _conf.k_min

_k := _conf.k_min if _conf.k_min > data.coop.k_min

_published if input.dataset in _conf.datasets

_consented if input.consent.allowed == true

_red if input.profile.level == "red"

_well_formed if is_object(input.profile)

default _allowed := false

_allowed if {
	_well_formed
	_published
	_consented
	not _red
}

_reasons contains "the question names no consent profile" if not _well_formed

_reasons contains "the co-op does not publish this dataset as open data" if not _published

_reasons contains "this consent profile does not allow publishing as open data" if not _consented

_reasons contains "red consent: used inside the co-op only" if _red

_reasons contains "this consent profile allows publishing as open data" if _allowed
