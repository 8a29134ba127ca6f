package coopfed.open_data.publication_test

import data.coopfed.open_data.publication

_green := {"level": "green", "persona": "", "choices": {}}

_yes := {"allowed": true, "reasons": []}

_no := {"allowed": false, "reasons": []}

_cases := [
	{"name": "consented", "profile": _green, "dataset": "demand", "consent": _yes, "allowed": true},
	{"name": "not consented", "profile": _green, "dataset": "demand", "consent": _no, "allowed": false},
	{"name": "red, whatever it says", "profile": {"level": "red"}, "dataset": "demand", "consent": _yes, "allowed": false},
	{"name": "not published", "profile": _green, "dataset": "gas", "consent": _yes, "allowed": false},
	{"name": "no decision", "profile": _green, "dataset": "demand", "consent": "yes", "allowed": false},
]

test_the_table if {
	every case in _cases {
		q := {"profile": case.profile, "dataset": case.dataset, "consent": case.consent}
		got := publication.contributes with input as q
		got.allowed == case.allowed
		count(got.reasons) > 0
	}
}

test_a_malformed_question_fails_closed if {
	got := publication.contributes with input as {"dataset": "demand"}
	got.allowed == false
}

test_terms_default_to_cc_by_and_keep_the_coops_k_as_a_floor if {
	publication.terms.licence.name == "CC-BY-4.0"
	publication.terms.k == 10
	low := publication.terms with data.open_data.k_min as 2
	low.k == data.coop.k_min
}
