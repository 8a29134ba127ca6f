# METADATA
# title: Ledger - the terms of a settlement run
# description: |
#   Decides how the co-op settles its local energy for one run of settlement periods: which
#   allocation key shares the local generation exported in a period among the members
#   consuming in it, with its parameters, the local, grid-import and export prices, and when a
#   provisional period becomes final. Settlement is flow 1 (internal use): it is allowed at
#   every consent level. The input is only the run's span; the arithmetic is the node's.
# scope: package
package coopfed.ledger.settlement

_conf := data.ledger

_half_hour := 1800

_day := 86400

# METADATA
# title: Settlement terms
# description: |
#   {"allowed": bool, "reasons": [string], "flow": "internal", "key": string, "key_title": string,
#   "priority_members": [member id], "static_shares": {member id: percent},
#   "prices_pence_per_kwh": {"local", "grid_import", "grid_export"}, "cutoff_days": number}.
#   Always defined; a malformed span or inconsistent terms are refused with reasons.
# entrypoint: true
terms := {
	"allowed": _allowed,
	"reasons": _reasons,
	"flow": "internal",
	"key": _conf.key,
	"key_title": _key_title,
	"priority_members": _conf.priority_members,
	"static_shares": _conf.static_shares,
	"prices_pence_per_kwh": _conf.prices_pence_per_kwh,
	"cutoff_days": _conf.cutoff_days,
}

default _allowed := false

_allowed if count(_errors) == 0

default _key_title := ""

_key_title := _conf.keys[_conf.key].title

_reasons contains msg if {
	_allowed
	msg := concat("", [
		"Settlement is internal use of members' data, allowed at every consent level. ",
		"Local energy is shared out ", _key_title, ".",
	])
}

_reasons contains msg if some msg in _errors

# --- the run's span -----------------------------------------------------------------------

# A whole number both engines hold exactly (see policies/README.md).
_is_int(x) if {
	is_number(x)
	x <= 9007199254740992
	x >= 0
	floor(x) == x
}

_on_half_hour(t) if floor(t / _half_hour) * _half_hour == t

_start_ok if {
	_is_int(input.period_start)
	_on_half_hour(input.period_start)
}

_end_ok if {
	_is_int(input.period_end)
	_on_half_hour(input.period_end)
}

_ordered if input.period_end > input.period_start

_within_max if input.period_end - input.period_start <= _conf.max_run_days * _day

_span_ok if {
	_start_ok
	_end_ok
}

_key_known if _conf.keys[_conf.key]

_text(x) := x if is_string(x)

_text(x) := "?" if not is_string(x)

_price_ok(name) if {
	value := _conf.prices_pence_per_kwh[name]
	is_number(value)
	value >= 0
	value <= 1000
}

_prices_ok if {
	_price_ok("local")
	_price_ok("grid_import")
	_price_ok("grid_export")
}

_local_between if {
	_conf.prices_pence_per_kwh.grid_export <= _conf.prices_pence_per_kwh.local
	_conf.prices_pence_per_kwh.local <= _conf.prices_pence_per_kwh.grid_import
}

_cutoff_ok if {
	_is_int(_conf.cutoff_days)
	_conf.cutoff_days >= 1
}

_priority_named if {
	is_array(_conf.priority_members)
	count(_conf.priority_members) > 0
	every m in _conf.priority_members {
		is_string(m)
	}
}

_share_ok(pct) if {
	is_number(pct)
	pct > 0
}

_shares_ok if {
	is_object(_conf.static_shares)
	count(_conf.static_shares) > 0
	every pct in _conf.static_shares {
		_share_ok(pct)
	}
	sum([pct | some pct in _conf.static_shares]) <= 100
}

# --- every reason to refuse ---------------------------------------------------------------

_errors contains "A settlement run needs a period start and end, whole unix seconds on the half hour." if {
	not _span_ok
}

_errors contains "A settlement run must end after it starts." if {
	_span_ok
	not _ordered
}

_errors contains msg if {
	_span_ok
	_ordered
	not _within_max
	msg := concat("", ["A settlement run may cover at most ", format_int(_conf.max_run_days, 10), " days."])
}

_errors contains msg if {
	not _key_known
	msg := concat("", ["The allocation key '", _text(_conf.key), "' is not one the ledger knows."])
}

_errors contains msg if {
	some name in ["local", "grid_import", "grid_export"]
	not _price_ok(name)
	msg := concat("", ["The ", name, " price must be a number of pence per kWh from 0 to 1000."])
}

_errors contains msg if {
	msg := concat("", [
		"The local price must lie between the export price and the grid import price, ",
		"so that buyers and generators both gain from trading locally.",
	])
	_prices_ok
	not _local_between
}

_errors contains "The cut-off for late readings must be a whole number of days, at least 1." if {
	not _cutoff_ok
}

_errors contains "The priority key needs the members the co-op named to come first." if {
	_conf.key == "priority"
	not _priority_named
}

_errors contains "The static key needs percentages above 0 for named members, 100 at most in all." if {
	_conf.key == "static"
	not _shares_ok
}
