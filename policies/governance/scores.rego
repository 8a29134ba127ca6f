# METADATA
# title: Governance - scores and words
# description: |
#   Helpers shared by the stages. Scores are whole numbers from 0 to 100; weights are whole
#   numbers. Messages are built with concat, never sprintf: rego-cpp (the embedded engine)
#   quotes strings that a builtin returned when sprintf formats them with %s.
# scope: package
package coopfed.governance.scores

# The weighted mean of dimensions {name: {"score", "weight", ...}}, rounded to a whole number.
weighted(dims) := round(sum([_points(d) | some d in dims]) / total) if {
	total := sum([d.weight | some d in dims])
	total > 0
}

_points(d) := d.score * d.weight

# A whole number as text.
n(x) := format_int(x, 10)

# x, but at most 100 (rego-cpp's min compares numbers as text, so it is not used).
capped(x) := 100 if x > 100

capped(x) := x if x <= 100

# x, but at least 0.
floored(x) := 0 if x < 0

floored(x) := x if x >= 0

# "Title (score/100): reason", for the list of a stage's reasons.
line(d) := concat("", [d.title, " (", n(d.score), "/100): ", d.reason])

# A UTC instant (unix seconds, >= 0) as "YYYY-MM-DD HH:MM", by arithmetic alone: rego-cpp's
# time builtins have corrupted memory here. Days to civil date after H. Hinnant's algorithm.
date(t) := concat("", [
	n(_year(_z(t))), "-", _two(_month(_z(t))), "-", _two(_day(_z(t))), " ",
	_two(floor(_seconds(t) / 3600)), ":", _two(floor((_seconds(t) - (floor(_seconds(t) / 3600) * 3600)) / 60)),
])

_seconds(t) := t - (floor(t / 86400) * 86400)

_z(t) := floor(t / 86400) + 719468

_era(z) := floor(z / 146097)

_doe(z) := z - (_era(z) * 146097)

_yoe(z) := floor((((_doe(z) - floor(_doe(z) / 1460)) + floor(_doe(z) / 36524)) - floor(_doe(z) / 146096)) / 365)

_doy(z) := _doe(z) - (((365 * _yoe(z)) + floor(_yoe(z) / 4)) - floor(_yoe(z) / 100))

_mp(z) := floor(((5 * _doy(z)) + 2) / 153)

_day(z) := (_doy(z) - floor(((153 * _mp(z)) + 2) / 5)) + 1

_month(z) := _mp(z) + 3 if _mp(z) < 10

_month(z) := _mp(z) - 9 if _mp(z) >= 10

_year(z) := (_yoe(z) + (_era(z) * 400)) + 1 if _month(z) <= 2

_year(z) := _yoe(z) + (_era(z) * 400) if _month(z) > 2

_two(x) := concat("", ["0", n(x)]) if x < 10

_two(x) := n(x) if x >= 10
