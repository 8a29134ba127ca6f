"""The portal over HTTP against a real node: sign-up, sessions, CSRF, consent, export, erasure."""

from __future__ import annotations

import dataclasses
import re
import time

from starlette.testclient import TestClient

from coopfed.node.forecast.store import StoredForecast, WindowRecord
from coopfed.node.governance import admission
from coopfed.node.policy import make_policy_set
from coopfed.node.policy.embedded import EmbeddedEngine
from coopfed.node.runtime import Node


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


PASSWORD = "correct horse battery"


def invitation(node: Node) -> str:
    return admission.invite(node.store, node.decision_log, node.policy, 14, "board:test")[1]


def sign_up(client: TestClient, node: Node, login: str = "ana@example.org", password: str = PASSWORD) -> None:
    page = client.get("/signup")
    r = client.post("/signup", data={
        "csrf_token": csrf(page.text), "display_name": "Ana's house", "login": login,
        "password": password, "invitation": invitation(node),
    })  # fmt: skip
    assert r.status_code == 200, r.text
    assert "Welcome" in r.text


def test_pages_need_a_session(client: TestClient) -> None:
    for path in (
        "/consent",
        "/access",
        "/energy",
        "/statement",
        "/compare",
        "/data",
        "/neighbourhood",
        "/decides",
        "/account",
    ):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/signin"


def test_sign_up_sets_a_strict_http_only_cookie_and_every_page_renders(
    client: TestClient, node: Node
) -> None:
    page = client.get("/signup")
    r = client.post("/signup", data={
        "csrf_token": csrf(page.text), "display_name": "Ana", "login": "Ana@Example.org",
        "password": "correct horse battery", "invitation": invitation(node),
    }, follow_redirects=False)  # fmt: skip
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    for path in (
        "/consent",
        "/access",
        "/energy",
        "/statement",
        "/compare",
        "/data",
        "/neighbourhood",
        "/decides",
        "/account",
    ):
        page = client.get(path)
        assert page.status_code == 200, path
        assert '<html lang="en-GB">' in page.text
        assert "Traceback" not in page.text
    assert client.get("/board").status_code == 403  # not a board member


def test_a_form_without_its_csrf_token_changes_nothing(client: TestClient, node: Node) -> None:
    sign_up(client, node)
    r = client.post("/consent", data={"level": "green", "csrf_token": "forged"})
    assert r.status_code == 403
    assert "expired" in r.text
    (member,) = [m for m in _members(node)]
    assert node.store.get_member(member).settings.level.value == "red"


def test_consent_change_gives_a_signed_receipt_to_download(client: TestClient, node: Node) -> None:
    sign_up(client, node)
    page = client.get("/consent")
    choice = {
        "csrf_token": csrf(page.text),
        "level": "amber",
        "choice": ["demand:open_data", "generation:third_party"],
    }
    r = client.post("/consent", data=choice)
    assert r.status_code == 200
    assert "Saved" in r.text
    (member,) = _members(node)
    settings = node.store.get_member(member).settings
    assert settings.level.value == "amber"
    assert {ds: {f.value for f in fl} for ds, fl in settings.choices.items()} == {
        "demand": {"open_data"},
        "generation": {"third_party"},
    }
    link = re.findall(r'href="(/consent/receipts/\d+)"', r.text)[0]
    receipt = client.get(link)
    assert receipt.headers["content-disposition"].startswith("attachment")
    body = receipt.json()
    assert body["receipt"]["piiPrincipalId"] == member
    assert body["signed_receipt"].count(".") == 2


def test_wrong_passwords_are_rate_limited(client: TestClient, node: Node) -> None:
    sign_up(client, node)
    client.cookies.clear()
    statuses = []
    for _ in range(6):
        page = client.get("/signin")
        r = client.post(
            "/signin",
            data={"csrf_token": csrf(page.text), "login": "ana@example.org", "password": "wrong one!!"},
        )
        statuses.append(r.status_code)
    assert statuses == [401] * 5 + [429]
    page = client.get("/signin")
    r = client.post(
        "/signin",
        data={"csrf_token": csrf(page.text), "login": "ana@example.org", "password": "correct horse battery"},
    )
    assert r.status_code == 429  # even the right password waits


def test_sign_out_everywhere_ends_other_sessions(client: TestClient, node: Node) -> None:
    sign_up(client, node)
    other = TestClient(client.app, base_url="http://localhost")
    page = other.get("/signin")
    other.post(
        "/signin",
        data={"csrf_token": csrf(page.text), "login": "ana@example.org", "password": "correct horse battery"},
    )
    assert other.get("/consent", follow_redirects=False).status_code == 200
    page = client.get("/account")
    client.post("/signout", data={"csrf_token": csrf(page.text), "everywhere": "1"})
    assert other.get("/consent", follow_redirects=False).status_code == 303


def test_export_and_erasure(client: TestClient, node: Node) -> None:
    import numpy as np

    sign_up(client, node)
    (member,) = _members(node)
    node.store.put_readings(member, [("demand", np.arange(48, dtype=np.int64) * 1800, np.full(48, 0.25))])
    data = client.get("/data/export.json").json()
    assert data["member"]["id"] == member
    assert len(data["readings"][0]["kwh"]) == 48
    lines = client.get("/data/export.csv").text.splitlines()
    assert lines[0].startswith("dataset,")
    assert len(lines) == 49
    page = client.get("/data")
    refused = client.post("/data/erase", data={"csrf_token": csrf(page.text), "confirm": "yes"})
    assert refused.status_code == 400
    assert node.store.get_member(member).erased_at is None
    done = client.post("/data/erase", data={"csrf_token": csrf(page.text), "confirm": "erase"})
    assert "48 readings" in done.text
    assert node.store.get_member(member).erased
    assert client.get("/consent", follow_redirects=False).status_code == 303


def _members(node: Node) -> list[str]:
    with node.store._read() as conn:
        return [r[0] for r in conn.execute("SELECT member_id FROM portal_accounts")]


def test_my_statement_shows_the_members_own_month_and_no_neighbours(client: TestClient, node: Node) -> None:
    import numpy as np

    from coopfed.node.model import ConsentSettings
    from coopfed.node.services import books_of

    sign_up(client, node)
    (member,) = _members(node)
    day = 1_704_067_200  # 1 Jan 2024, midnight in London
    periods = day + 1800 * np.arange(48, dtype=np.int64)
    node.store.put_readings(member, [("demand", periods, np.full(48, 1.0))])
    node.store.create_member("sun", "Sunny neighbour", ConsentSettings(), admitted_by="test")
    flat = {"demand": 0.0, "generation": 0.5, "export": 0.5}
    node.store.put_readings("sun", [(k, periods, np.full(48, v)) for k, v in flat.items()])
    books_of(node).settle(day, day + 86_400, now=day + 86_400)
    page = client.get("/statement?month=2024-01")
    assert page.status_code == 200
    text = " ".join(re.sub(r"<[^>]+>", " ", page.text).split())
    assert "January 2024" in text
    assert "Energy bought locally £4.32 for 24.000 kWh" in text  # 0.5 kWh a half-hour from the neighbour
    assert "Sunny" not in text  # nothing of another member
    assert client.get("/statement?month=someday").status_code == 400


def test_how_my_home_compares_keeps_small_groups_hidden_and_ranks_the_member(
    client: TestClient, node: Node
) -> None:
    import numpy as np

    from coopfed.node.model import ConsentLevel, ConsentSettings
    from coopfed.node.storage import Home

    sign_up(client, node)
    (member,) = _members(node)
    week = 1_767_571_200 + 1800 * np.arange(7 * 48, dtype=np.int64)  # 5 Jan 2026: winter
    evening = (week // 1800 % 48 >= 34) & (week // 1800 % 48 < 44)  # 17:00-22:00 GMT
    node.store.put_readings(member, [("demand", week, np.where(evening, 1.0, 0.2))])
    home = Home(household_size=2, heating="heat_pump", home_type="flat")
    page = client.get("/compare")
    assert "too few homes like yours" in page.text
    assert "at least 5" in page.text
    for i in range(5):  # evening use 0.5 .. 1.3: the member's 1.0 is above three of them
        node.store.create_member(
            f"p{i}", f"Peer {i}", ConsentSettings(level=ConsentLevel.GREEN), admitted_by="test"
        )
        node.store.set_home(f"p{i}", home)
        node.store.put_readings(f"p{i}", [("demand", week, np.where(evening, 0.5 + i / 5, 0.2))])
    node.store.create_member("other", "Other", ConsentSettings(level=ConsentLevel.GREEN), admitted_by="test")
    node.store.set_home("other", Home(heating="gas"))  # not similar once the member declares a home
    node.store.put_readings("other", [("demand", week, np.full(week.size, 5.0))])
    form = {
        "household_size": "2",
        "heating": "heat_pump",
        "home_type": "flat",
        "has_pv": "",
        "has_battery": "",
    }
    assert client.post("/compare", data={"csrf_token": "forged", **form}).status_code == 403
    assert node.store.homes([member]) == {}
    bad = client.post("/compare", data={"csrf_token": csrf(page.text), **form, "household_size": "40"})
    assert bad.status_code == 400
    assert "Traceback" not in bad.text
    done = client.post("/compare", data={"csrf_token": csrf(page.text), **form})
    assert done.status_code == 200
    assert node.store.homes([member])[member] == home
    text = " ".join(re.sub(r"<[^>]+>", " ", done.text).split())
    assert "compared with 5 similar homes this winter" in text
    assert "Your evening use is higher than 60% of similar homes." in text
    assert "after 19:00" in text  # the suggestion names the co-op's peak
    assert "Peer" not in text  # nothing of any neighbour
    assert 'value="heat_pump" selected' in done.text
    for bad_kw in ("-1", "lots", "5000"):  # refused in plain words; what was declared stays
        refused = client.post("/compare", data={"csrf_token": csrf(page.text), **form, "solar_kw": bad_kw})
        assert refused.status_code == 400
        assert "Solar panels, kW peak: a number from 0 to 1000" in refused.text
    assert node.store.homes([member])[member] == home
    solar = client.post("/compare", data={"csrf_token": csrf(page.text), **form, "solar_kw": " 4.2 "})
    assert node.store.homes([member])[member] == dataclasses.replace(home, solar_kw=4.2)
    assert 'name="solar_kw" min="0" max="1000" step="any" value="4.2"' in solar.text
    assert "Wind turbine, kW peak" in solar.text


def test_pages_answer_from_the_policy_in_force_after_a_reload(client: TestClient, node: Node) -> None:
    sign_up(client, node)
    old = node.policy.policies
    renamed = make_policy_set(
        dict(old.modules), {**old.data, "coop": {**old.data["coop"], "name": "Fellside Power"}}
    )
    assert "Riverside Energy Co-op" in client.get("/decides").text
    node.policy.swap(EmbeddedEngine(renamed), renamed)
    page = client.get("/decides").text
    assert "Fellside Power" in page
    assert "Riverside Energy Co-op" not in page
    assert renamed.revision[:12] in page
    assert old.revision[:12] not in page


def test_my_energy_shows_the_latest_forecasts_nudges_once_asked_for(client: TestClient, node: Node) -> None:
    sign_up(client, node)
    now = int(time.time()) // 1800 * 1800
    periods = tuple(now + 1800 * i for i in range(96))
    assert node.forecast is not None
    node.forecast.store.save_forecast(StoredForecast(
        "coop", now, now, periods, (1.0,) * 96, (0.5,) * 96, 8, 60.0, 1.2,
        (WindowRecord("peak", now + 7200, now + 10800, False),), "local", (),
    ))  # fmt: skip
    off = client.get("/energy").text
    assert "Send me nudges" in off
    on = client.post("/energy", data={"csrf_token": csrf(off), "nudges": "1"}).text
    assert "Stop nudges" in on
    nudge = re.search(r"<ul><li>([^<]+)</li>", on)
    assert nudge, on
    assert nudge.group(1) not in off
