"""The pure parts: merge patches, what a bundle may change, and how a ballot is counted."""

from __future__ import annotations

import json

import pytest

from coopfed.node.ballots.tally import count, find_receipt, receipt_hash, recount
from coopfed.node.policy.data_changes import governed_changes, merge_patch, patched_pointers, unexplained

DATA = {"ballots": {"governed": ["/coop/k_min", "/ballots"]}, "coop": {"k_min": 5, "name": "Co-op"}}
RULES = {"quorum_percent": 50, "majority_percent": 50}


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [  # RFC 7396, appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_is_rfc_7396(target: object, patch: object, result: object) -> None:
    assert merge_patch(target, patch) == result


def test_patched_pointers_are_the_leaves() -> None:
    assert patched_pointers({"coop": {"k_min": 3}, "a/b": {"c": None}}) == ["/a~1b/c", "/coop/k_min"]


def test_only_governed_changes_need_a_ballot_and_only_the_named_change_is_allowed() -> None:
    renamed = merge_patch(DATA, {"coop": {"name": "New name"}})
    assert governed_changes(DATA, renamed) == []  # the board's to change
    lowered = merge_patch(DATA, {"coop": {"k_min": 3}})
    assert unexplained(DATA, lowered, []) == ["/coop/k_min"]
    assert unexplained(DATA, lowered, [{"coop": {"k_min": 3}}]) == []
    assert unexplained(DATA, lowered, [{"coop": {"k_min": 4}}]) == ["/coop/k_min"]  # not that change
    assert unexplained(DATA, DATA, [{"coop": {"k_min": 4}}]) == ["/coop/k_min"]  # named but not made
    replaced = {**DATA, "coop": "a section replaced wholesale"}
    assert unexplained(DATA, replaced, []) == ["/coop"]
    ungoverned = merge_patch(DATA, {"ballots": {"governed": ["/ballots"]}})  # k leaves members' hands
    assert unexplained(DATA, ungoverned, []) == ["/ballots/governed"]


def _proposal(choices: list[str]) -> dict:  # type: ignore[type-arg]
    alternatives = [{"key": c, "patch": {"coop": {"k_min": i}}} for i, c in enumerate(choices) if c != "no"]
    return {
        "rules": RULES, "choices": [{"key": c} for c in [*choices, "abstain"]],
        "alternatives": [a for a in alternatives if a["key"] != "abstain"],
    }  # fmt: skip


def _box(*choices: str) -> list[tuple[str, str]]:
    return [(receipt_hash("b", f"r{i}"), c) for i, c in enumerate(choices)]


def test_a_yes_no_ballot_needs_the_quorum_and_more_than_the_majority() -> None:
    p = _proposal(["yes", "no"])
    assert count("b", p, _box("yes", "yes", "no"), 6, "t")["passed"]  # 3 of 6 voted: quorum
    assert not count("b", p, _box("yes", "yes"), 6, "t")["passed"]  # 2 of 6: no quorum
    assert not count("b", p, _box("yes", "no", "abstain"), 4, "t")["passed"]  # a tie is no majority
    tally = count("b", p, _box("yes", "abstain", "abstain"), 4, "t")
    assert (tally["passed"], tally["winner"], tally["change"]) == (True, "yes", {"coop": {"k_min": 0}})
    assert not count("b", p, _box("abstain", "abstain"), 2, "t")["passed"]  # nobody decided
    assert not count("b", p, [], 0, "t")["passed"]


def test_a_choice_is_won_by_the_alternative_with_more_than_the_majority() -> None:
    p = _proposal(["a1", "a2", "a3"])
    assert count("b", p, _box("a1", "a1", "a2"), 3, "t")["winner"] == "a1"
    assert count("b", p, _box("a1", "a2", "a3", "a1"), 4, "t")["winner"] == ""  # 2 of 4 is not more than half


def test_a_receipt_finds_its_vote_and_a_doctored_tally_does_not_recount() -> None:
    tally = count("b", _proposal(["yes", "no"]), _box("yes", "no", "no"), 3, "t")
    assert find_receipt(tally, "b", "r1") == "no"
    assert find_receipt(tally, "other-ballot", "r1") is None  # a receipt belongs to its ballot
    assert recount(tally)
    doctored = json.loads(json.dumps(tally))
    doctored["counts"]["yes"] = 2
    assert not recount(doctored)


@pytest.mark.parametrize("named", ["a ballot", [{"ballot_id": "b"}], [{"ballot_id": 1, "tally_digest": "d"}]])
def test_a_manifest_naming_ballots_badly_is_refused(tmp_path, named: object) -> None:  # type: ignore[no-untyped-def]
    from coopfed.node.policy.archive import MANIFEST, SIGNATURES, read_archive, write_archive
    from coopfed.node.policy.boardkeys import BoardKeySet, BoardSigningKey
    from coopfed.node.policy.bundle import BundleError, build_bundle, sign_bundle, verify_bundle

    from ..node.conftest import POLICIES

    key = BoardSigningKey.generate()
    path = build_bundle(POLICIES, tmp_path / "b.tar.gz", [key], ballots=[("b", "0" * 64)]).path
    assert verify_bundle(path, BoardKeySet([key.public_key])).info.ballots == (("b", "0" * 64),)
    files = read_archive(path)
    manifest = json.loads(files[MANIFEST])
    manifest["metadata"]["coopfed"]["ballots"] = named
    files[MANIFEST] = json.dumps(manifest).encode()
    files.pop(SIGNATURES)
    write_archive(path, files)
    sign_bundle(path, key)  # signed as it is: the board signed a malformed manifest
    with pytest.raises(BundleError, match="must each name a ballot_id and a tally_digest"):
        verify_bundle(path, BoardKeySet([key.public_key]))
