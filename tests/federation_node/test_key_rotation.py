"""Key rotation between two real nodes, and joining over TLS on first use."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import grpc
import jwt
import pytest

from coopfed.node import cli
from coopfed.node.federation.decide import GrantAsk
from coopfed.node.model import ConsentLevel, ConsentSettings

from .conftest import (
    FORECASTING,
    YEAR_END,
    RunningNode,
    coop_policies,
    grantee_of,
    populate,
    refresher,
    running,
)

pytestmark = pytest.mark.integration

ASK = GrantAsk(("demand",), (), "aggregate", "coop_to_coop", FORECASTING, YEAR_END - 86_400 * 7, YEAR_END)


@pytest.fixture
def pair(tmp_path) -> Iterator[tuple[RunningNode, RunningNode]]:
    policies = coop_policies(tmp_path)
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(running(tmp_path / "a", "coop-a", policies))
        # B serves its public port over TLS with the certificate `node init` made.
        b = stack.enter_context(
            running(tmp_path / "b", "coop-b", policies, {"COOPFED_NODE__PLAINTEXT": "false"})
        )
        populate(b.node, [ConsentSettings(level=ConsentLevel.GREEN)] * 5, last_day_members=5, seed=1)
        preview = asyncio.run(grantee_of(a.node).preview_join(b.public))  # trust on first use
        assert preview.contact.transport == "TLS, trust on first use"
        assert preview.contact.presented_fingerprint == b.node.federation.tls.fingerprint
        grantee_of(a.node).pin(preview)
        grantee_of(b.node).pin(asyncio.run(grantee_of(b.node).preview_join(a.public, plaintext=True)))
        yield a, b


def _kid(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def _fetch(a: RunningNode, jti: str) -> int:
    return asyncio.run(grantee_of(a.node).fetch_aggregates(jti)).summary.cells_released


def _cli(node: RunningNode, *args: str) -> int:
    return cli.main(["federation", args[0], "--config", str(node.config), *args[1:]])


def test_rotated_keys_sign_new_grants_and_old_ones_verify_until_retired(pair) -> None:
    a, b = pair
    old, _ = asyncio.run(grantee_of(a.node).obtain_grant("coop-b", ASK))
    old_kid = _kid(old.token)
    assert _cli(b, "rotate-key") == 0  # another process changes B's key ring; B picks it up
    new, _ = asyncio.run(grantee_of(a.node).obtain_grant("coop-b", ASK))
    assert _kid(new.token) != old_kid  # A met an unknown kid and re-pinned B's keys over mTLS
    pinned = a.node.federation.state.peer("coop-b").manifest.jwks
    assert set(pinned) == {old_kid, _kid(new.token)}
    assert _fetch(a, old.jti) == _fetch(a, new.jti) == 7 * 48

    assert _cli(b, "rotate-key") == 0
    report = asyncio.run(refresher(a.node).refresh_all())  # the refresh task re-pins from the manifest too
    assert report.rekeyed == ["coop-b"]
    assert not report.failures
    assert len(a.node.federation.state.peer("coop-b").manifest.jwks) == 3

    assert _cli(b, "retire-key", "--", old_kid) == 0
    with pytest.raises(grpc.RpcError) as refused:
        _fetch(a, old.jti)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "kid not among the issuer's pinned keys" in refused.value.details()
    assert _fetch(a, new.jti) == 7 * 48
    assert not asyncio.run(refresher(a.node).refresh_all()).failures
    assert old_kid not in a.node.federation.state.peer("coop-b").manifest.jwks


def test_replacing_every_key_at_once_needs_a_new_join(pair) -> None:
    a, b = pair
    first = b.node.keys.kids[0]
    assert _cli(b, "rotate-key") == 0
    assert _cli(b, "retire-key", "--", first) == 0  # before A ever saw the new key
    report = asyncio.run(refresher(a.node).refresh_all())
    assert "join it again" in report.failures["coop-b"]
    assert set(a.node.federation.state.peer("coop-b").manifest.jwks) == {first}  # the pin is kept


def test_manifest_cli_shows_what_peers_pin(pair, capsys) -> None:
    a, b = pair
    assert _cli(b, "manifest") == 0
    shown = capsys.readouterr().out
    assert b.node.federation.tls.fingerprint in shown
    for fingerprint in b.node.keys.jwks().fingerprints().values():
        assert fingerprint in shown
    assert _cli(a, "peers") == 0
    assert "coop-b" in capsys.readouterr().out


def test_grants_cli_lists_held_and_issued(pair, capsys, tmp_path) -> None:
    a, b = pair
    argv = ["request-grant", "coop-b", "--dataset", "demand", "--from", "2023-12-25", "--to", "2024-01-01"]
    assert _cli(a, *argv) == 0
    jti = next(iter(a.node.federation.state.held()))
    out = tmp_path / "year.csv"
    assert _cli(a, "fetch", jti, "--out", str(out)) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "dataset,period_start,kwh,member_count"
    assert len(lines) == 1 + 7 * 48
    assert lines[1].startswith("demand,2023-12-25T00:00:00+00:00,")
    assert lines[1].endswith(",5")
    capsys.readouterr()
    assert _cli(b, "grants") == 0
    assert jti in capsys.readouterr().out
    decisions = b.node.federation.state.decisions()
    assert decisions[-1]["allowed"]
    assert decisions[-1]["grant"]["jti"] == jti
