# METADATA
# title: Governance stage 1 - the data requirement
# description: |
#   Is what the request asks for held and available? Each dataset must be in the co-op's
#   catalogue and held, offered at the granularity asked, with the fields asked, over the
#   period asked, on a flow governance serves, with enough members consenting to the release.
#   Every dimension passes or fails with its reason; the stage passes when all pass.
# scope: package
package coopfed.governance.requirement

import data.coopfed.governance.request
import data.coopfed.governance.scores

_req := request.body

_cat := data.governance.catalogue

_names := ["held", "granularity", "fields", "period", "flow", "consent"]

_day := 86400

# METADATA
# title: Stage 1 result
# description: '{"passed": bool, "score": 0 or 100, "dimensions": {name: {...}}, "reasons": [string]}'
result := {
	"passed": passed,
	"score": _score,
	"dimensions": {name: _dimension(name) | some name in _names},
	"reasons": sort([msg | some [_, msg] in _problems]),
}

default passed := false

passed if {
	request.valid
	count(_problems) == 0
}

default _score := 0

_score := 100 if passed

_failed(name) if {
	some [name_, _] in _problems
	name_ == name
}

_dimension(_) := {"passed": false, "score": 0, "reason": "Not checked: the request is malformed."} if {
	not request.valid
}

_dimension(name) := {"passed": false, "score": 0, "reason": concat(" ", sort(msgs))} if {
	request.valid
	_failed(name)
	msgs := [msg | some [name_, msg] in _problems; name_ == name]
}

_dimension(name) := {"passed": true, "score": 100, "reason": _passing[name]} if {
	request.valid
	not _failed(name)
}

_passing := {
	"held": "Every dataset asked for is in the catalogue and held.",
	"granularity": concat("", ["Every dataset asked for is offered as ", _req.granularity, " data."]),
	"fields": "Every field asked for is offered at that granularity.",
	"period": "The data held covers the whole period asked for.",
	"flow": concat("", ["Requests for ", _flow_title, " are served."]),
	"consent": "Enough members consent to this release.",
}

default _flow_title := "the flow asked for"

_flow_title := data.flows[_req.flow].title

_title(ds) := data.datasets[ds].title

_date(t) := scores.date(t)

_held(ds) if input.catalogue[ds].held == true

_offered(ds) if _req.granularity in _cat[ds].granularities

_field_offered(f) if _req.granularity in data.governance.fields[f].granularities

_flow_served if _req.flow in data.governance.flows

_covers(held, asked) if {
	held.start <= asked.start
	asked.end <= held.end
}

_consenting(ds) := object.get(input.catalogue[ds], "consenting_members", 0)

# "Electricity demand data to be shared with ... for ...": what a member's consent is asked for.
_release_words(ds) := concat("", [_title(ds), _release_tail])

_release_tail := concat("", [
	" data to be ", data.flows[_req.flow].phrase, " for ", data.purposes[_req.purpose.code].label,
])

_problems contains ["held", msg] if {
	request.valid
	some ds in _req.datasets
	not _cat[ds]
	msg := concat("", [
		"The catalogue has no dataset called '", ds, "' (it offers: ", concat(", ", sort(object.keys(_cat))), ").",
	])
}

_problems contains ["held", msg] if {
	request.valid
	some ds in _req.datasets
	_cat[ds]
	not _held(ds)
	msg := concat("", ["The co-op holds no ", _title(ds), " data yet."])
}

_problems contains ["granularity", msg] if {
	request.valid
	some ds in _req.datasets
	_cat[ds]
	not _offered(ds)
	msg := concat("", ["The ", _title(ds), " data is not offered as ", _req.granularity, " data."])
}

_problems contains ["fields", "The request must ask for at least one field."] if {
	request.valid
	count(_req.fields) == 0
}

_problems contains ["fields", msg] if {
	request.valid
	some f in _req.fields
	not data.governance.fields[f]
	msg := concat("", [
		"There is no field called '", f, "' (fields: ",
		concat(", ", sort(object.keys(data.governance.fields))), ").",
	])
}

_problems contains ["fields", msg] if {
	request.valid
	some f in _req.fields
	data.governance.fields[f]
	not _field_offered(f)
	msg := concat("", ["The field '", f, "' is not offered in ", _req.granularity, " data."])
}

_problems contains ["period", msg] if {
	request.valid
	some ds in _req.datasets
	_held(ds)
	held := input.catalogue[ds].period
	not _covers(held, _req.period)
	msg := concat("", [
		"The period asked for (", _date(_req.period.start), " to ", _date(_req.period.end),
		" UTC) is not within the ", _title(ds), " data held (", _date(held.start), " to ",
		_date(held.end), " UTC).",
	])
}

_problems contains ["period", msg] if {
	request.valid
	limit := data.governance.grant.max_period_days
	_req.period.end - _req.period.start > limit * _day
	msg := concat("", ["A request may cover at most ", scores.n(limit), " days."])
}

_problems contains ["flow", msg] if {
	request.valid
	not _flow_served
	msg := concat("", [
		"Data requests are for the ", concat(", ", data.governance.flows), " flow, not '", _req.flow, "'.",
	])
}

_problems contains ["consent", msg] if {
	request.valid
	_req.granularity == "aggregate"
	some ds in _req.datasets
	_held(ds)
	_consenting(ds) < data.coop.k_min
	msg := concat("", [
		"Only ", scores.n(_consenting(ds)), " members allow their ", _release_words(ds),
		": an aggregate needs at least ", scores.n(data.coop.k_min), ".",
	])
}

_problems contains ["consent", msg] if {
	request.valid
	_req.granularity == "individual"
	some ds in _req.datasets
	_held(ds)
	_consenting(ds) == 0
	msg := concat("", ["No member allows their ", _release_words(ds), "."])
}
