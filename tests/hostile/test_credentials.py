"""Stolen or stale credentials against a serving node: revoked member, organisation and board
tokens, a member's old tokens after "sign out everywhere", an expired or over-long board
token, and a token signed by a key the CLI retired in another process. Each is refused on its
next call, without a restart or a federation refresh."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from coopfed.federation.tls import channel_options
from coopfed.federation.tokens import TokenUse, VerifiedToken, issue_token, verify_token
from coopfed.node.cli import main
from coopfed.node.client import bearer, grant_bearer
from coopfed.node.credentials import RevokedTokens, issue_board_token
from coopfed.node.federation.client import access_token
from coopfed.node.runtime import Node
from coopfed.v1 import federation_pb2, federation_pb2_grpc, member_pb2
from coopfed.v1 import governance_pb2 as pb
from tests.federation_node.conftest import POLICIES, RunningNode, grantee_of, refresher, running
from tests.federation_node.test_key_rotation import ASK
from tests.governance.conftest import GREEN, Running, add_member, approved_grant, register, start

pytestmark = pytest.mark.integration
node_of: list[Node] = []  # the module's node, for reading tokens' claims


@pytest.fixture(scope="module")
def gov(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    for served in start(tmp_path_factory.mktemp("credentials")):
        node_of[:] = [served.node]
        yield served


def _member(gov: Running) -> tuple[str, str]:
    reply = gov.members.Register(member_pb2.RegisterRequest(display_name="Ada"))
    return reply.member_id, reply.token


def _consent(gov: Running, token: str) -> member_pb2.ConsentSettings:
    return gov.members.GetConsent(member_pb2.GetConsentRequest(), metadata=bearer(token), timeout=10)


def _refused(call, *args, **kwargs) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, info.value.details()
    return info.value


def _revoke(gov: Running, **target: str) -> pb.RevokeTokenResponse:
    return gov.review.RevokeToken(pb.RevokeTokenRequest(reason="lost laptop", **target), metadata=gov.board())


def test_a_revoked_member_token_is_refused_on_its_next_call(gov: Running) -> None:
    _, token = _member(gov)
    _, other = _member(gov)
    _consent(gov, token)
    _revoke(gov, jti=_jti(token))
    error = _refused(_consent, gov, token)
    assert "lost laptop" in (error.details() or "")
    _consent(gov, other)  # another member's token is untouched


def _jti(token: str) -> str:
    return _verified(token).jti


def _verified(token: str) -> VerifiedToken:
    node = node_of[0]
    return verify_token(
        token,
        trust=node.credentials.own_trust(),
        issuer=node.node_id,
        audience=node.node_id,
        use=TokenUse.ACCESS,
    )


def test_every_token_of_a_member_revoked_at_once(gov: Running) -> None:
    member_id, token = _member(gov)
    reply = _revoke(gov, member_id=member_id)
    assert reply.issued_before.seconds > 0
    _refused(_consent, gov, token)


def test_a_revoked_organisation_token_is_refused(gov: Running) -> None:
    org_id, md = register(gov)
    gov.governance.GetOrganisation(pb.GetOrganisationRequest(), metadata=md)
    _revoke(gov, organisation_id=org_id)
    _refused(gov.governance.GetOrganisation, pb.GetOrganisationRequest(), metadata=md)


def test_a_revoked_board_token_is_refused(gov: Running) -> None:
    md = bearer(issue_board_token(gov.node.node_id, gov.node.keys, "eve", 3600))
    gov.review.ListOrganisations(pb.ListOrganisationsRequest(), metadata=md)
    _revoke(gov, board_member="eve")
    _refused(gov.review.ListOrganisations, pb.ListOrganisationsRequest(), metadata=md)
    gov.review.ListOrganisations(pb.ListOrganisationsRequest(), metadata=gov.board("ada"))


def test_revocations_survive_a_restart(gov: Running) -> None:
    """Stored, not only held in memory: what a restarted node loads refuses the same token."""
    _, token = _member(gov)
    _revoke(gov, jti=_jti(token))
    reloaded = RevokedTokens(gov.node.governance.token_revocations())
    assert reloaded.reason_for(_verified(token)) == "lost laptop"


def test_unknown_targets_and_empty_reasons_are_refused(gov: Running) -> None:
    for request, code in (
        (pb.RevokeTokenRequest(member_id="m-nobody", reason="x"), grpc.StatusCode.NOT_FOUND),
        (pb.RevokeTokenRequest(jti="abc", reason="  "), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.RevokeTokenRequest(reason="nothing named"), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.RevokeTokenRequest(jti="x" * 500, reason="long"), grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.RpcError) as info:
            gov.review.RevokeToken(request, metadata=gov.board())
        assert info.value.code() == code, info.value.details()


def test_sign_out_everywhere_kills_old_tokens_and_the_new_one_works(gov: Running) -> None:
    member_id, first = _member(gov)
    second = gov.node.credentials.issue_member_token(member_id)  # as if signed in on another device
    reply = gov.members.SignOutEverywhere(member_pb2.SignOutEverywhereRequest(), metadata=bearer(first))
    _refused(_consent, gov, first)
    _refused(_consent, gov, second)
    assert _consent(gov, reply.token).level  # the fresh token works at once
    gov.node.decision_log.flush()
    with sqlite3.connect(gov.node.settings.path(gov.node.settings.storage.path)) as db:
        logged = [row[0] for row in db.execute("SELECT entry_json FROM decision_log")]
    assert any("token_revocation" in entry for entry in logged)
    assert not any(member_id in entry for entry in logged)  # the log names members by pseudonym
    _, other = _member(gov)
    _consent(gov, other)


def test_an_expired_board_token_is_refused_and_cannot_be_renewed(gov: Running) -> None:
    now = int(time.time())
    expired = issue_token(
        gov.node.keys, issuer=gov.node.node_id, subject="board:ada", audience=gov.node.node_id,
        use=TokenUse.ACCESS, ttl=600, claims={"role": "board"}, now=now - 3600,
    )  # fmt: skip
    md = bearer(expired)
    _refused(gov.review.ListOrganisations, pb.ListOrganisationsRequest(), metadata=md)
    _refused(gov.review.RenewToken, pb.RenewTokenRequest(), metadata=md)


def test_a_board_token_longer_lived_than_allowed_is_refused(gov: Running) -> None:
    month = bearer(issue_board_token(gov.node.node_id, gov.node.keys, "ada", 30 * 86_400))
    error = _refused(gov.review.ListOrganisations, pb.ListOrganisationsRequest(), metadata=month)
    assert "12 hours" in (error.details() or "")


def test_renewal_swaps_a_valid_board_token_for_a_fresh_one(gov: Running) -> None:
    old = bearer(issue_board_token(gov.node.node_id, gov.node.keys, "bob", 3600))
    reply = gov.review.RenewToken(pb.RenewTokenRequest(), metadata=old)
    assert reply.expires_at.seconds >= int(time.time()) + 12 * 3600 - 60
    gov.review.ListOrganisations(pb.ListOrganisationsRequest(), metadata=bearer(reply.token))
    _refused(gov.review.ListOrganisations, pb.ListOrganisationsRequest(), metadata=old)


def _cli(config: Path, action: str, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "coopfed.node.cli", "federation", action, "--config", str(config), *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_a_retired_key_stops_verifying_at_once(gov: Running) -> None:
    """Rotation and retirement by the CLI, in another process, while the node serves: tokens
    signed by the retired key are refused on the next call, those by the new key accepted."""
    config = gov.node.settings.base_dir / "coopfed.toml"
    _, member_token = _member(gov)
    org_id, org_md = register(gov)
    board_md = gov.board()
    old_kid = gov.node.keys.signer.kid
    _cli(config, "rotate-key")
    _, fresh = _member(gov)  # signed with the new key, which the serving node picked up
    assert gov.node.keys.signer.kid != old_kid
    _consent(gov, member_token)  # the old key still verifies until retired
    _cli(config, "retire-key", "--", old_kid)
    _refused(_consent, gov, member_token)
    _refused(gov.governance.GetOrganisation, pb.GetOrganisationRequest(), metadata=org_md)
    _refused(gov.review.ListOrganisations, pb.ListOrganisationsRequest(), metadata=board_md)
    _consent(gov, fresh)
    gov.review.ListOrganisations(pb.ListOrganisationsRequest(), metadata=gov.board())
    assert org_id


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main([*argv])
    return code, capsys.readouterr().out


def test_the_command_line_signs_out_renews_and_revokes(
    gov: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    member, board = tmp_path / "member.json", tmp_path / "board.json"
    config = str(gov.node.settings.base_dir / "coopfed.toml")
    assert _run(capsys, "member", "register", "--credentials", str(member), "--node", gov.address,
                "--name", "Ada")[0] == 0  # fmt: skip
    old = json.loads(member.read_text())["token"]
    code, out = _run(capsys, "member", "sign-out-everywhere", "--credentials", str(member))
    assert code == 0, out
    assert "revoked" in out
    assert member.stat().st_mode & 0o777 == 0o600
    assert _run(capsys, "member", "consent", "--credentials", str(member))[0] == 0
    _refused(_consent, gov, old)
    assert _run(capsys, "review", "token", "--credentials", str(board), "--config", config, "--name", "cy",
                "--node", gov.address)[0] == 0  # fmt: skip
    first = json.loads(board.read_text())["token"]
    code, out = _run(capsys, "review", "renew", "--credentials", str(board))
    assert code == 0, out
    assert "renewed" in out
    _refused(gov.review.ListOrganisations, pb.ListOrganisationsRequest(), metadata=bearer(first))
    subject = json.loads(member.read_text())["subject"]
    code, out = _run(capsys, "review", "revoke-token", "--member", subject, "--reason", "left the co-op",
                     "--credentials", str(board))  # fmt: skip
    assert code == 0, out
    assert f"revoked every token of {subject} issued before" in out
    assert _run(capsys, "member", "consent", "--credentials", str(member))[0] == 1
    assert _run(capsys, "review", "token", "--credentials", str(board), "--config", config, "--name", "cy",
                "--hours", "48", "--force")[0] == 2  # fmt: skip


# --- peers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningNode]]:
    """coop-a and coop-b pinned to each other; coop-c pinned b, but b never pinned c."""
    root = tmp_path_factory.mktemp("peers")
    with contextlib.ExitStack() as stack:
        nodes = {n: stack.enter_context(running(root / n, f"coop-{n}", POLICIES)) for n in "abc"}
        for who, peer in (("a", "b"), ("b", "a"), ("c", "b")):
            grantee = grantee_of(nodes[who].node)
            grantee.pin(asyncio.run(grantee.preview_join(nodes[peer].public, plaintext=True)))
        yield nodes


def _peer_stub(caller: RunningNode, target: RunningNode) -> tuple[grpc.Channel, Any]:
    assert caller.node.federation is not None
    assert target.node.federation is not None
    creds = caller.node.federation.tls.channel_credentials([target.node.federation.tls.cert_pem])
    channel = grpc.secure_channel(target.peer, creds, options=channel_options(target.id))
    return channel, federation_pb2_grpc.FederationServiceStub(channel)


def test_a_replayed_peer_access_token_is_refused(coops: dict[str, RunningNode]) -> None:
    """Someone who saw one of a's calls to b (a log, a proxy) and holds a's TLS identity replays
    its token: it worked once, for the call it was made for, and never again."""
    a, b = coops["a"], coops["b"]
    assert a.node.federation is not None
    md = bearer(access_token(a.node.federation, a.node.keys, "coop-b"))
    channel, stub = _peer_stub(a, b)
    with channel:
        stub.ExchangeLogHeads(federation_pb2.ExchangeLogHeadsRequest(head=""), metadata=md, timeout=10)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ExchangeLogHeads(federation_pb2.ExchangeLogHeadsRequest(head=""), metadata=md, timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "used before" in (caught.value.details() or "")
    held, _ = asyncio.run(grantee_of(a.node).obtain_grant("coop-b", ASK))  # fresh tokens still work
    assert held.issuer == "coop-b"


def test_revocation_lists_go_only_to_pinned_peers(coops: dict[str, RunningNode]) -> None:
    """b's list of revoked grants says whom it granted to: without a peer's token, refused."""
    a, b = coops["a"], coops["b"]
    channel, stub = _peer_stub(a, b)
    with channel, pytest.raises(grpc.RpcError) as caught:
        stub.GetRevocations(federation_pb2.GetRevocationsRequest(), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    report = asyncio.run(refresher(a.node).refresh_all())  # a pinned peer fetches it with its own token
    assert report.failures == {}


# --- grants ---------------------------------------------------------------------------------


def test_a_copied_grant_is_useless_without_its_organisations_token(gov: Running) -> None:
    """Another organisation (or anyone) holding a copy of a grant: alone, or with its own valid
    token, refused; with the grantee's token it streams; once that token is revoked, refused."""
    for _ in range(5):
        add_member(gov.node, GREEN)
    holder_id, holder_md = register(gov)
    _, thief_md = register(gov)
    grant = approved_grant(gov, holder_md)
    holder_token, thief_token = holder_md[0][1].split()[1], thief_md[0][1].split()[1]
    for metadata in (bearer(grant.token), grant_bearer(grant.token, thief_token)):
        error = _refused(lambda md: list(gov.data.FetchData(pb.FetchDataRequest(), metadata=md)), metadata)
        assert "organisation" in (error.details() or "")
    chunks = list(gov.data.FetchData(pb.FetchDataRequest(), metadata=grant_bearer(grant.token, holder_token)))
    assert chunks[0].HasField("header")
    _revoke(gov, organisation_id=holder_id)
    _refused(
        lambda md: list(gov.data.FetchData(pb.FetchDataRequest(), metadata=md)),
        grant_bearer(grant.token, holder_token),
    )
