"""The decision log's hash chain, its verification, masking and buffering (no storage involved)."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coopfed.node.decisionlog import GENESIS, DecisionLog, Head, entry_hash, export_lines, link, verify
from coopfed.node.masking import Masker, MaskRules, canonical
from coopfed.node.policy import PolicySet, make_policy_set
from coopfed.node.policy.embedded import EmbeddedEngine
from coopfed.node.policy.holder import PolicyHolder

KEY = b"k" * 32


def _events(n: int) -> list[dict[str, Any]]:
    return [
        {
            "decision_id": f"d{i}",
            "path": "coopfed/consent/decision",
            "input": {"i": i},
            "result": {"allowed": i % 2 == 0},
            "timestamp": "2024-01-01T00:00:00+00:00",
        }
        for i in range(1, n + 1)
    ]


def _log(n: int) -> list[str]:
    """A chained log of n entries, stored as canonical JSON text."""
    return [canonical(e).decode() for e in link(_events(n), 0, GENESIS)]


def _edit(raw: str, **changes: Any) -> str:
    return canonical({**json.loads(raw), **changes}).decode()


def _kinds(report: Any) -> list[tuple[str, int | None]]:
    return [(p.kind, p.seq) for p in report.problems]


def test_an_intact_log_verifies_and_reports_its_head() -> None:
    log = _log(5)
    report = verify(log)
    assert report.ok
    assert report.entries == 5
    assert (report.head_seq, report.head_hash) == (5, json.loads(log[-1])["hash"])


def test_each_entry_chains_to_the_previous_one() -> None:
    entries = [json.loads(raw) for raw in _log(3)]
    assert entries[0]["prev_hash"] == GENESIS
    assert entries[1]["prev_hash"] == entries[0]["hash"]
    assert all(entry_hash(e) == e["hash"] for e in entries)
    assert [e["seq"] for e in entries] == [1, 2, 3]


def test_an_edited_entry_is_named() -> None:
    log = _log(5)
    log[2] = _edit(log[2], result={"allowed": True, "tampered": True})
    report = verify(log)
    assert _kinds(report) == [("edited", 3)]
    assert "entry 3 (decision d3, position 3) was edited" in report.problems[0].message


def test_an_edit_with_its_hash_recomputed_is_caught_by_the_next_link() -> None:
    log = _log(5)
    changed = {**json.loads(log[1]), "result": {"allowed": False, "edited": True}}
    changed["hash"] = entry_hash(changed)
    log[1] = canonical(changed).decode()
    assert _kinds(verify(log)) == [("edited", 2)]


def test_a_deleted_entry_is_named() -> None:
    log = _log(5)
    del log[2]
    report = verify(log)
    assert _kinds(report) == [("deleted", 3)]
    assert "entry 3 was deleted" in report.problems[0].message


def test_reordered_entries_are_named() -> None:
    log = _log(5)
    log[1], log[2] = log[2], log[1]
    report = verify(log)
    assert _kinds(report) == [("reordered", 2)]
    assert "entry 2 (decision d2, position 3) is out of order" in report.problems[0].message


def test_a_duplicated_entry_is_named() -> None:
    log = _log(3)
    log.insert(2, log[1])
    assert ("duplicated", 2) in _kinds(verify(log))


def test_a_cut_off_tail_is_found_only_against_a_recorded_head() -> None:
    log = _log(5)
    head = (5, json.loads(log[-1])["hash"])
    assert verify(log[:3]).ok  # without an anchor, a shorter log is a valid log
    report = verify(log[:3], head=head)
    assert _kinds(report) == [("truncated", 5)]
    assert "entries 4 to 5 were cut off" in report.problems[0].message


def test_a_rewritten_log_does_not_match_the_recorded_head() -> None:
    log = _log(4)
    head = (4, json.loads(log[-1])["hash"])
    rewritten = [canonical(e).decode() for e in link(_events(4)[::-1], 0, GENESIS)]
    assert verify(rewritten).ok
    assert _kinds(verify(rewritten, head=head)) == [("edited", 4)]


def test_garbage_lines_are_malformed_not_fatal() -> None:
    log = _log(3)
    log.insert(1, "not json")
    log.append('{"decision_id": "x"}')
    kinds = [p.kind for p in verify(log).problems]
    assert kinds.count("malformed") == 2


@settings(max_examples=60, deadline=None)
@given(size=st.integers(2, 12), data=st.data())
def test_any_single_deletion_or_swap_is_detected(size: int, data: st.DataObject) -> None:
    log = _log(size)
    i = data.draw(st.integers(0, size - 2), label="position")
    if data.draw(st.booleans(), label="swap"):
        log[i], log[i + 1] = log[i + 1], log[i]
        assert [p.kind for p in verify(log).problems] == ["reordered"]
    else:
        del log[i]
        assert [(p.kind, p.seq) for p in verify(log).problems] == [("deleted", i + 1)]


def test_export_lines_are_canonical_json_lines() -> None:
    lines = list(export_lines(_log(2)))
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    assert verify(lines).ok


# --- masking ------------------------------------------------------------------------------


def _masker(**rules: tuple[str, ...]) -> Masker:
    return Masker(MaskRules(**rules), KEY)


def test_erase_removes_and_lists_the_path() -> None:
    event = {"input": {"organisation": {"contact": "ada@example.org", "type": "university"}}}
    masked = _masker(erase=("/input/organisation/contact",)).apply(event)
    assert masked["input"] == {"organisation": {"type": "university"}}
    assert masked["erased"] == ["/input/organisation/contact"]
    assert event["input"]["organisation"]["contact"] == "ada@example.org"  # the caller's copy is untouched


def test_digest_proves_the_text_without_holding_it() -> None:
    text = "A study by Dr Ada Lovelace of 12 Acacia Avenue"
    masked = _masker(digest=("/input/reason",)).apply({"input": {"reason": text}})
    assert text not in json.dumps(masked)
    assert masked["input"]["reason"].startswith("sha256:")
    again = _masker(digest=("/input/reason",)).apply({"input": {"reason": text}})
    assert again["input"]["reason"] == masked["input"]["reason"]
    assert masked["masked"] == ["/input/reason"]


def test_pseudonyms_are_keyed_stable_and_unlinkable_without_the_key() -> None:
    rules = {"pseudonymise": ("/input/members/*/id", "/input/reviewer")}
    event = {"input": {"members": [{"id": "m-1"}, {"id": "m-2"}, {"id": "m-1"}], "reviewer": "board:ada"}}
    masked = _masker(**rules).apply(event)
    ids = [m["id"] for m in masked["input"]["members"]]
    assert ids[0] == ids[2] != ids[1]
    assert all(i.startswith("pseud:") for i in ids)
    assert "m-1" not in json.dumps(masked)
    other = Masker(MaskRules(**rules), b"x" * 32).apply(event)
    assert other["input"]["members"][0]["id"] != ids[0]
    assert masked["masked"] == [
        "/input/members/0/id",
        "/input/members/1/id",
        "/input/members/2/id",
        "/input/reviewer",
    ]


def test_missing_paths_are_left_alone() -> None:
    masked = _masker(erase=("/input/nothing/here",), digest=("/result/x",)).apply({"input": {"a": 1}})
    assert masked == {"input": {"a": 1}}


def test_rules_come_from_policy_data(policy_set: Any) -> None:
    rules = MaskRules.from_policy_data(policy_set.data)
    assert "/input/organisation/contact" in rules.erase
    assert "/input/reviewer" in rules.pseudonymise


def _with_mask(policies: PolicySet, **rules: list[str]) -> PolicySet:
    """The same policies with other decision-log mask rules: a new revision."""
    data = copy.deepcopy(policies.data)
    data["governance"]["decision_log"].update(rules)
    return make_policy_set(dict(policies.modules), data)


@pytest.fixture
def holder(policy_set: PolicySet) -> Iterator[PolicyHolder]:
    holder = PolicyHolder(EmbeddedEngine(policy_set), policy_set)
    yield holder
    holder.close()


REVIEW = {"reviewer": "board:ada", "note": "Dr Ada Lovelace, 12 Acacia Avenue"}


def test_a_reload_changes_what_the_next_entry_masks(
    holder: PolicyHolder, policy_set: PolicySet, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[str] = []
    parse = MaskRules.from_policy_data.__func__  # type: ignore[attr-defined]

    def counting(cls: type[MaskRules], data: Any) -> MaskRules:
        parsed.append(holder.revision)
        return parse(cls, data)

    monkeypatch.setattr(MaskRules, "from_policy_data", classmethod(counting))
    sink = _Sink()
    log = DecisionLog(Masker(holder, KEY), {"id": "coop"}, sink)
    log.append(log.event("coopfed/board/review", REVIEW, {}, holder.revision))
    pseudonymise = policy_set.data["governance"]["decision_log"]["pseudonymise"]
    new = _with_mask(
        policy_set, erase=["/input/note"], pseudonymise=[p for p in pseudonymise if p != "/input/reviewer"]
    )
    holder.swap(EmbeddedEngine(new), new)
    for _ in range(3):
        log.append(log.event("coopfed/board/review", REVIEW, {}, holder.revision))
    before, *after = [batch[0] for batch in sink.batches]
    assert before["input"] == {
        "reviewer": Masker(MaskRules(), KEY).pseudonym("board:ada"),
        "note": REVIEW["note"],
    }
    assert before["masked"] == ["/input/reviewer"]
    assert "erased" not in before
    for entry in after:  # the new revision's rules: the note erased, the reviewer named
        assert entry["input"] == {"reviewer": "board:ada"}
        assert entry["erased"] == ["/input/note"]
        assert "masked" not in entry
    assert parsed == [policy_set.revision, new.revision]  # once per revision, not per entry


def test_an_entry_is_masked_by_the_revision_that_made_it(holder: PolicyHolder, policy_set: PolicySet) -> None:
    masker = Masker(holder, KEY)
    narrower = _with_mask(policy_set, pseudonymise=[])
    with holder.pinned():  # a request that started on the old revision and logs after the reload
        holder.swap(EmbeddedEngine(narrower), narrower)
        logged = masker.apply({"input": dict(REVIEW), "revision": holder.revision})
    assert logged["input"]["reviewer"].startswith("pseud:")
    assert masker.apply({"input": dict(REVIEW), "revision": narrower.revision})["input"] == REVIEW
    # a revision gone before its rules were read: masked by every rule still known
    gone = masker.apply({"input": dict(REVIEW), "revision": "no-longer-held"})
    assert gone["input"]["reviewer"].startswith("pseud:")


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Masker(MaskRules(), b"short")


# --- buffering ----------------------------------------------------------------------------


class _Sink:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.fail = fail

    def __call__(self, events: list[dict[str, Any]]) -> None:
        if self.fail:
            raise RuntimeError("disk full")
        self.batches.append(events)


def _decision_log(sink: _Sink, flush_at: int = 256) -> DecisionLog:
    return DecisionLog(_masker(), {"id": "coop"}, sink, flush_at=flush_at)


def test_events_have_opas_decision_log_shape() -> None:
    event = _decision_log(_Sink()).event("coopfed/x", {"a": 1}, {"b": 2}, "rev1")
    assert set(event) >= {
        "decision_id",
        "path",
        "input",
        "result",
        "revision",
        "bundles",
        "labels",
        "timestamp",
    }
    assert event["bundles"] == {"coopfed": {"revision": "rev1"}}


def test_recorded_decisions_wait_for_the_next_append() -> None:
    sink = _Sink()
    log = _decision_log(sink)
    first = log.record("coopfed/consent/decision", {"q": 1}, {"allowed": True}, "r")
    assert sink.batches == []
    own = log.event("coopfed/governance/decision", {}, {}, "r")
    log.append(own)
    assert [e["decision_id"] for e in sink.batches[0]] == [first, own["decision_id"]]


def test_a_full_buffer_flushes_itself() -> None:
    sink = _Sink()
    log = _decision_log(sink, flush_at=3)
    for i in range(3):
        log.record("p", {"i": i}, {}, "r")
    assert len(sink.batches) == 1
    assert len(sink.batches[0]) == 3


def test_a_failed_append_keeps_the_waiting_decisions() -> None:
    sink = _Sink(fail=True)
    log = _decision_log(sink)
    waiting = log.record("p", {}, {}, "r")
    with pytest.raises(RuntimeError):
        log.append(log.event("q", {}, {}, "r"))
    sink.fail = False
    log.flush()
    assert [e["decision_id"] for e in sink.batches[0]] == [waiting]


def test_a_committed_decision_is_appended_at_once_with_those_waiting() -> None:
    sink = _Sink()
    log = _decision_log(sink)
    waiting = log.record("coopfed/consent/decision", {"p": 1}, {"allowed": True}, "r1")
    granted = log.commit("coopfed/federation/grant/decision", {"q": 2}, {"allowed": True}, "r1")
    assert [[e["decision_id"] for e in batch] for batch in sink.batches] == [[waiting, granted]]


def test_the_head_of_an_empty_log_verifies() -> None:
    assert verify([], head=(0, GENESIS)).ok


def test_a_witness_head_names_its_source_for_a_cut_and_a_rewrite() -> None:
    entries = link(_events(4), 0, GENESIS)
    cut = verify([json.dumps(e) for e in entries[:2]], heads=[Head(4, entries[3]["hash"], "coop-b's copy")])
    assert [p.kind for p in cut.problems] == ["truncated"]
    assert "(coop-b's copy is entry 4)" in cut.problems[0].message
    moved = verify([json.dumps(e) for e in entries], heads=[Head(3, "f" * 64, "coop-b's copy")])
    assert [(p.kind, p.seq) for p in moved.problems] == [("edited", 3)]


def test_entries_after_the_signed_head_are_forged() -> None:
    entries = link(_events(5), 0, GENESIS)
    report = verify([json.dumps(e) for e in entries], signed=Head(3, entries[2]["hash"], "the signed head"))
    assert [(p.kind, p.seq) for p in report.problems] == [("forged", 4)]
    assert "entries 4 to 5 come after the signed head (entry 3)" in report.problems[0].message


def test_entries_hashed_before_rfc_8785_still_verify_and_export_as_hashed() -> None:
    """A log written when entries were hashed over sorted-keys JSON (floats as `1.0`) still verifies."""
    from coopfed.federation.canonical import legacy_json

    events = [{**e, "input": {"kwh": 1.0, "at": 1e-07}} for e in _events(3)]
    entries, prev = [], GENESIS
    for seq, event in enumerate(events, start=1):
        entry = {**event, "seq": seq, "prev_hash": prev}
        entry["hash"] = prev = hashlib.sha256(legacy_json(entry)).hexdigest()
        entries.append(entry)
    assert entries[0]["hash"] != entry_hash(entries[0])  # the forms differ for these values
    stored = [json.dumps(e) for e in entries]
    assert verify(stored).ok
    assert list(export_lines(stored)) == [legacy_json(e).decode() + "\n" for e in entries]
    tampered = [*stored[:2], json.dumps({**entries[2], "input": {"kwh": 2.0}})]
    assert _kinds(verify(tampered)) == [("edited", 3)]
