"""From a member's petition to the signed bundle that implements what the members decided."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import pytest

from coopfed.node.ballots.tally import find_receipt, receipt_hash, recount
from coopfed.node.ballots.voting import TALLY_PATH
from coopfed.node.cli import main
from coopfed.node.policy.data_changes import digest
from coopfed.node.policy.explain import ballots_behind, explain, lookup_entry
from coopfed.v1 import ballot_pb2 as pb

from .conftest import VOTING_SECONDS, Coop, edit_data

pytestmark = pytest.mark.integration

LOWER_K = {"coop": {"k_min": 3}}


def _wait_until_closed(ballot: pb.Ballot) -> None:
    time.sleep(max(0.0, ballot.closes_at.ToSeconds() - time.time()) + 0.2)


def _code(call) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()


def test_a_petition_becomes_a_ballot_whose_passed_change_a_signed_bundle_carries(coop: Coop, capsys) -> None:  # type: ignore[no-untyped-def]
    stub = coop.stub
    # a decision under the current rules, for the impact report and for explain
    coop.node.consent.logged(
        {"level": "green", "persona": "", "choices": {}}, "demand", "member_to_member", "dpv:PublicBenefit"
    )
    proposal = pb.ProposeRequest(
        title="Smaller groups", explanation="Let groups of three members be released.",
        change_json=json.dumps(LOWER_K),
    )  # fmt: skip
    petition = stub.Propose(proposal, metadata=coop.member("alice"), timeout=300)
    assert (petition.state, petition.signatures, petition.signatures_needed) == ("petition", 1, 2)
    impact = json.loads(petition.proposal_json)["alternatives"][0]["impact"]
    assert impact["replayed"] >= 1
    assert "past decisions would change" in impact["summary"]
    assert (
        _code(
            lambda: stub.Vote(
                pb.VoteRequest(ballot_id=petition.ballot_id, choice="yes"), metadata=coop.member("alice")
            )
        )
        == grpc.StatusCode.FAILED_PRECONDITION
    )

    ballot = stub.SignPetition(
        pb.SignPetitionRequest(ballot_id=petition.ballot_id), metadata=coop.member("bob")
    )
    assert ballot.state == "open"
    receipts = {}
    for member, choice in (("alice", "yes"), ("bob", "yes"), ("carol", "no")):
        reply = stub.Vote(
            pb.VoteRequest(ballot_id=ballot.ballot_id, choice=choice), metadata=coop.member(member)
        )
        assert reply.receipt_hash == receipt_hash(ballot.ballot_id, reply.receipt)
        receipts[member] = reply.receipt
    again = pb.VoteRequest(ballot_id=ballot.ballot_id, choice="no")
    assert _code(lambda: stub.Vote(again, metadata=coop.member("alice"))) == grpc.StatusCode.ALREADY_EXISTS
    assert _code(lambda: stub.Vote(again, metadata=coop.member("dan"))) == grpc.StatusCode.PERMISSION_DENIED
    assert _code(lambda: stub.Tally(pb.TallyRequest(ballot_id=ballot.ballot_id), metadata=coop.board)) == (
        grpc.StatusCode.FAILED_PRECONDITION  # nothing is counted while it is open
    )
    seen = stub.GetBallot(pb.GetBallotRequest(ballot_id=ballot.ballot_id), metadata=coop.member("alice"))
    assert (seen.voted, seen.you_voted, seen.tally_json) == (3, True, "")

    # a bundle that makes the change before the members decided is refused
    edit_data(coop.policies, LOWER_K)
    coop.publish()
    outcome = coop.node.policy.reloader.reload()
    assert not outcome.ok
    assert "members decide by ballot" in outcome.reason
    assert "/coop/k_min" in outcome.reason

    _wait_until_closed(ballot)
    closed = stub.Tally(pb.TallyRequest(ballot_id=ballot.ballot_id), metadata=coop.member("carol"))
    tally = json.loads(closed.tally_json)
    assert (tally["counts"], tally["eligible"], tally["voted"]) == ({"yes": 2, "no": 1, "abstain": 0}, 3, 3)
    assert tally["passed"]
    assert tally["change"] == LOWER_K
    assert closed.tally_digest == digest(tally)
    assert recount(tally)
    for member, choice in (("alice", "yes"), ("bob", "yes"), ("carol", "no")):
        assert find_receipt(tally, ballot.ballot_id, receipts[member]) == choice
    assert find_receipt(tally, ballot.ballot_id, "a guessed receipt") is None
    logged = [json.loads(e) for e in coop.node.governance.decision_log()]
    [entry] = [e for e in logged if e["path"] == TALLY_PATH]
    assert digest(entry["result"]) == closed.tally_digest  # the log holds the published tally
    wal = coop.folder / (coop.node.settings.storage.path + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # the votes' transactions are gone from the WAL

    # the bundle naming a different digest is refused; naming the ballot's own is accepted
    coop.publish(ballots=[(ballot.ballot_id, "0" * 64)])
    assert "not its tally's" in coop.node.policy.reloader.reload().reason
    bundle = coop.publish(ballots=[(ballot.ballot_id, closed.tally_digest)])
    outcome = coop.node.policy.reloader.reload()
    assert outcome.ok, outcome.reason
    assert coop.node.policy.revision == bundle.revision
    assert coop.node.policy_data["coop"]["k_min"] == 3

    # explain names the ballot behind the rule a later decision ran on
    decision = coop.node.decision_log.commit(
        "coopfed/governance/decision", {"request": {}}, {"outcome": "approve"}, coop.node.policy.revision
    )
    entry = lookup_entry(coop.node.governance, decision)
    behind = ballots_behind(coop.node.ballots, entry, coop.node.policy.policies.modules)
    assert [(b["ballot_id"], b["pointer"]) for b in behind] == [(ballot.ballot_id, "/coop/k_min")]
    assert any(ballot.ballot_id in line for line in explain(entry, behind))
    assert main(["policy", "explain", decision, "--config", str(coop.folder / "coopfed.toml")]) == 0
    assert f'/coop/k_min: ballot {ballot.ballot_id} "Smaller groups" (yes 2, no 1' in capsys.readouterr().out


def test_a_member_verifies_a_receipt_with_the_cli(coop: Coop, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from coopfed.node.client import Credentials

    ballot = coop.stub.Propose(
        pb.ProposeRequest(title="Fairer prices", explanation="Local energy at 17p.",
                          change_json=json.dumps({"ledger": {"prices_pence_per_kwh": {"local": 17}}})),
        metadata=coop.board, timeout=300,
    )  # fmt: skip
    assert ballot.state == "open"
    creds = tmp_path / "alice.json"
    Credentials(coop.address, "alice", coop.node.credentials.issue_member_token("alice")).save(
        creds, force=True
    )
    assert main(["ballot", "vote", ballot.ballot_id, "yes", "--credentials", str(creds), "--json"]) == 0
    receipt = json.loads(capsys.readouterr().out)["receipt"]
    assert main(["ballot", "show", ballot.ballot_id, "--credentials", str(creds)]) == 0
    shown = capsys.readouterr().out
    assert "Fairer prices" in shown
    assert "past decisions would change" in shown
    assert "the prices of energy, in pence per kWh (local): 18 becomes 17" in shown
    assert main(["ballot", "show", ballot.ballot_id, "--report", "--credentials", str(creds)]) == 0
    assert "## Policy impact" in capsys.readouterr().out
    assert main(["ballot", "tally", ballot.ballot_id, "--credentials", str(creds)]) == 1  # still open
    assert "not possible now" in capsys.readouterr().out
    _wait_until_closed(ballot)
    assert main(["ballot", "tally", ballot.ballot_id, "--receipt", receipt, "--credentials", str(creds)]) == 0
    out = capsys.readouterr().out
    assert "your receipt is counted as: yes" in out
    assert "not passed" in out  # one of three voted: no quorum
    assert (
        main(["ballot", "tally", ballot.ballot_id, "--receipt", "forged", "--credentials", str(creds)]) == 1
    )
    assert "NOT in the tally" in capsys.readouterr().out
    assert VOTING_SECONDS > 0


def test_a_node_does_not_start_on_a_bundle_changing_what_members_decide(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from coopfed.node.policy.boardkeys import BoardSigningKey, public_pem
    from coopfed.node.policy.bundle import BundleError, build_bundle
    from coopfed.node.runtime import init_node, open_node
    from coopfed.node.settings import load_settings

    from ..node.conftest import POLICIES

    folder = tmp_path / "coop"
    config = init_node(folder, node_id="coop", name="Co-op", listen="127.0.0.1:0", policies=POLICIES)
    key = BoardSigningKey.generate()
    (folder / "board.pub").write_bytes(public_pem(key.public_key))
    import shutil

    work = Path(shutil.copytree(folder / "policies", tmp_path / "work"))
    edit_data(work, {"consent": {"personas": {"privacy_first": None}}})  # a persona removed
    build_bundle(work, folder / "bundle.tar.gz", [key])
    env = {"COOPFED_POLICY__BUNDLE": "bundle.tar.gz", "COOPFED_POLICY__BOARD_KEYS": "board.pub"}
    with (
        pytest.raises(BundleError, match="/consent/personas/privacy_first"),
        open_node(load_settings(config, environ=env)),
    ):
        pass
