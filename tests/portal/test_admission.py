"""Joining through the portal: an invitation admits at once; without one the board decides."""

from __future__ import annotations

from starlette.testclient import TestClient

from coopfed.node.portal.accounts import Accounts
from coopfed.node.runtime import Node
from tests.portal.test_pages import PASSWORD, csrf, invitation

MEMBER_PAGES = ("/consent", "/access", "/energy", "/data", "/neighbourhood")


def apply(
    client: TestClient, code: str = "", login: str = "bo@example.org", name: str = "Bo's flat"
) -> object:
    page = client.get("/signup")
    return client.post("/signup", data={
        "csrf_token": csrf(page.text), "display_name": name, "login": login,
        "password": PASSWORD, "invitation": code,
    })  # fmt: skip


def board_member(node: Node, client: TestClient) -> None:
    """A second browser, signed in as an invited member the board role was given to."""
    assert apply(client, invitation(node), "chair@example.org", "The chair").status_code == 200
    accounts = Accounts(node.store)
    accounts.set_role(accounts.find("chair@example.org").member_id, "board")


def test_an_invitation_admits_at_once_and_is_used_up(client: TestClient, node: Node) -> None:
    code = invitation(node)
    r = apply(client, code)
    assert r.url.path == "/consent"
    member = Accounts(node.store).find("bo@example.org")
    assert member.admitted
    assert node.store.get_member(member.member_id).status == "admitted"
    other = TestClient(client.app, base_url="http://localhost")
    again = apply(other, code, "eve@example.org")
    assert again.status_code == 400
    assert "used already" in again.text
    assert "leave the box empty to apply" in again.text
    assert "leave the box empty to apply" in apply(other, "x" * 100, "eve@example.org").text
    assert Accounts(node.store).find("eve@example.org") is None  # nothing kept of the refused sign-up


def test_without_an_invitation_the_applicant_waits_for_the_board(client: TestClient, node: Node) -> None:
    r = apply(client)
    assert r.url.path == "/waiting"
    assert "board will decide" in r.text
    assert "What you can do meanwhile" in r.text
    assert node.store.get_member(Accounts(node.store).find("bo@example.org").member_id).status == "applicant"
    for path in MEMBER_PAGES:
        assert client.get(path, follow_redirects=False).headers["location"] == "/waiting", path
    assert client.get("/decides").status_code == 200
    assert client.get("/account").status_code == 200
    assert client.get("/board", follow_redirects=False).status_code == 303  # nor a board page


def test_the_board_admits_an_applicant_with_a_reason(client: TestClient, node: Node) -> None:
    apply(client)
    applicant = Accounts(node.store).find("bo@example.org").member_id
    board = TestClient(client.app, base_url="http://localhost")
    board_member(node, board)
    page = board.get("/board/admissions")
    assert "Bo&#39;s flat" in page.text
    no_reason = board.post(
        f"/board/admissions/{applicant}",
        data={"csrf_token": csrf(page.text), "outcome": "admit", "reason": " "},
    )
    assert no_reason.status_code == 400
    assert node.store.get_member(applicant).status == "applicant"
    done = board.post(f"/board/admissions/{applicant}", data={
        "csrf_token": csrf(page.text), "outcome": "admit", "reason": "Lives on Mill Lane, in our area.",
    })  # fmt: skip
    assert "Admitted" in done.text
    assert "Bo&#39;s flat" not in done.text
    chair = Accounts(node.store).find("chair@example.org").member_id
    assert node.store.get_member(applicant).admitted_by == f"portal:{chair}"
    assert client.get("/consent").status_code == 200  # the applicant's own session opens up


def test_a_refused_applicant_reads_the_boards_reason(client: TestClient, node: Node) -> None:
    apply(client)
    applicant = Accounts(node.store).find("bo@example.org").member_id
    board = TestClient(client.app, base_url="http://localhost")
    board_member(node, board)
    page = board.get("/board/admissions")
    board.post(f"/board/admissions/{applicant}", data={
        "csrf_token": csrf(page.text), "outcome": "refuse", "reason": "Outside the co-op's area.",
    })  # fmt: skip
    assert node.store.get_member(applicant).status == "refused"
    waiting = client.get("/waiting")
    assert "did not admit you" in waiting.text
    assert "Outside the co-op&#39;s area." in waiting.text
    decide = lambda outcome: board.post(f"/board/admissions/{applicant}", data={  # noqa: E731
        "csrf_token": csrf(page.text), "outcome": outcome, "reason": "Moved into the area.",
    })  # fmt: skip
    assert decide("admit").status_code == 200  # the board can change its mind
    assert node.store.get_member(applicant).status == "admitted"
    refused = decide("refuse")
    assert refused.status_code == 409
    assert "admitted already" in refused.text
    assert node.store.get_member(applicant).status == "admitted"
