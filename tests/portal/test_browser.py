"""The portal in Debian's headless Chromium against a real node (gRPC and portal on loopback):
invitation, sign-up, consent and its receipt, a board member approving a referred request whose
release then shows under "Who used my data", export and erasure; axe-core on every page.

tests/portal/axe.min.js is axe-core 4.14.1 (npm pack axe-core@4.14.1, package/axe.min.js),
Deque Systems, licensed MPL-2.0: https://mozilla.org/MPL/2.0/
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest

from coopfed.node.client import grant_bearer
from coopfed.node.governance import admission
from coopfed.node.portal.accounts import Accounts
from coopfed.node.runtime import Node, init_node, open_node
from coopfed.node.server import NodeServer
from coopfed.node.settings import load_settings
from coopfed.v1 import governance_pb2 as pb
from tests.governance.conftest import FAST, GREEN, HH, JAN, Running, add_member, data_request, register
from tests.node.conftest import POLICIES
from tests.portal.test_pages import PASSWORD

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip(
        "needs Debian's chromium and chromium-driver (make install adds them)", allow_module_level=True
    )

from selenium import webdriver  # noqa: E402 - only where Chromium is
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.expected_conditions import staleness_of  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

AXE = (Path(__file__).parent / "axe.min.js").read_text()
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
AXE_RUN = """
const done = arguments[arguments.length - 1];
axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]}})
  .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                          where: v.nodes.slice(0, 3).map(n => n.target.join(" "))}))));
"""


@dataclass
class Site:
    gov: Running
    url: str
    downloads: Path
    member_id: str = ""

    @property
    def node(self) -> Node:
        return self.gov.node


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One node for the module, serving gRPC and the portal from its own event loop thread."""
    folder = tmp_path_factory.mktemp("browser")
    config = init_node(folder / "coop", node_id="coop", name="Riverside Energy Co-op", listen="127.0.0.1:0",
                       policies=POLICIES)  # fmt: skip
    with socket.socket() as free:  # a port chosen here, so the portal's address can name it
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    # Members reach it as localhost: WebAuthn takes a domain, never an IP address, as its RP ID.
    env = {
        **FAST,
        "COOPFED_PORTAL__LISTEN": f"127.0.0.1:{port}",
        "COOPFED_PORTAL__PUBLIC_URL": f"http://localhost:{port}",
    }
    with open_node(load_settings(config, environ=env)) as node:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        server = NodeServer(node)
        port = asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
        assert server.portal is not None
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                downloads = folder / "downloads"
                downloads.mkdir()
                yield Site(Running(node, f"127.0.0.1:{port}", channel), server.portal.url, downloads)
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(1), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[WebDriver]:
    """One headless Chromium for the module: starting it costs more than every test in it."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1400"):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(site.downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER or ""))
    driver.set_script_timeout(30)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def visit(driver: WebDriver, site: Site, path: str, name: str) -> None:
    driver.get(site.url + path)
    checked(driver, name)


def checked(driver: WebDriver, name: str) -> None:
    """The page as it stands: a screenshot for the artefacts, and no serious or critical axe finding."""
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    driver.execute_script(AXE)
    found = [v for v in driver.execute_async_script(AXE_RUN) if v["impact"] in ("serious", "critical")]
    assert not found, f"{name}: {json.dumps(found, indent=1)}"


def fill(driver: WebDriver, **fields: str) -> None:
    for field, value in fields.items():
        box = driver.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)


def submit(driver: WebDriver, button: str) -> None:
    """Press a form's button and wait for the page it leads to."""
    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, button).click()
    WebDriverWait(driver, 10).until(staleness_of(page))


def download(driver: WebDriver, site: Site, link: str) -> Path:
    """Click the link and wait for Chromium to finish writing the one file it downloads."""
    for old in site.downloads.iterdir():
        old.unlink()
    driver.find_element(By.PARTIAL_LINK_TEXT, link).click()
    for _ in range(100):
        files = list(site.downloads.iterdir())
        if files and not any(f.suffix == ".crdownload" for f in files):
            (file,) = files
            return file
        time.sleep(0.1)
    raise AssertionError(f"nothing downloaded from {link!r}")


def test_an_applicant_without_an_invitation_reads_that_the_board_will_decide(
    browser: WebDriver, site: Site
) -> None:
    browser.get(site.url + "/signup")
    fill(browser, display_name="Bo's flat", login="bo@example.org", password=PASSWORD)
    submit(browser, "form[action='/signup'] button[type=submit]")
    assert browser.current_url.startswith(site.url + "/waiting")
    assert "board will decide" in browser.find_element(By.ID, "main").text
    checked(browser, "waiting")
    submit(browser, "form[action='/signout'] button")


def test_an_invited_household_joins_changes_consent_and_downloads_the_receipt(
    browser: WebDriver, site: Site
) -> None:
    visit(browser, site, "/signin", "signin")
    visit(browser, site, "/signup", "signup")
    code = admission.invite(site.node.store, site.node.decision_log, site.node.policy, 14, "board:test")[1]
    fill(browser, display_name="Ana's house", invitation=code, login="ana@example.org", password=PASSWORD)
    submit(browser, "form[action='/signup'] button[type=submit]")
    assert browser.current_url.startswith(site.url + "/consent")
    site.member_id = Accounts(site.node.store).find("ana@example.org").member_id
    periods = JAN + HH * np.arange(48 * 31, dtype=np.int64)  # the month the third party asks about
    site.node.store.put_readings(site.member_id, [("demand", periods, np.full(periods.size, 0.4))])
    checked(browser, "consent")
    browser.find_element(By.ID, "level-green").click()
    submit(browser, "form[action='/consent'] button[type=submit]")
    assert "Saved" in browser.page_source
    assert site.node.store.get_member(site.member_id).settings.level.value == "green"
    checked(browser, "consent-saved")
    receipt = json.loads(download(browser, site, "Download the receipt").read_text())
    assert receipt["receipt"]["piiPrincipalId"] == site.member_id
    assert receipt["signed_receipt"].count(".") == 2


def test_a_board_member_approves_a_referred_request_and_the_member_sees_the_release(
    browser: WebDriver, site: Site
) -> None:
    for _ in range(5):
        add_member(site.node, GREEN)  # enough households for the totals' k
    _org, md = register(site.gov)
    status = site.gov.governance.SubmitDataRequest(data_request(), metadata=md)
    assert status.state == pb.REQUEST_STATE_AWAITING_REVIEW  # an organisation the board has not checked
    Accounts(site.node.store).set_role(site.member_id, "board")
    visit(browser, site, "/board", "board-requests")
    assert "Example University" in browser.page_source
    fill(browser, **{f"reason-{status.request_id}": "A published study of evening peaks; totals only."})
    submit(browser, f"form[action='/board/requests/{status.request_id}'] button[value=approve]")
    assert browser.current_url.startswith(site.url + "/board/decisions")
    checked(browser, "board-decisions")
    decided = site.gov.governance.GetDecision(
        pb.GetDecisionRequest(request_id=status.request_id), metadata=md
    )
    assert decided.state == pb.REQUEST_STATE_APPROVED
    org_token = dict(md)["authorization"].removeprefix("Bearer ")
    chunks = list(
        site.gov.data.FetchData(pb.FetchDataRequest(), metadata=grant_bearer(decided.grant.token, org_token))
    )
    assert chunks
    visit(browser, site, "/access", "who-used-my-data")
    used = browser.find_element(By.ID, "main").text
    assert "Example University" in used
    assert "A published study" in used  # the board's reason is the decision's explanation


def test_every_other_page_passes_axe(browser: WebDriver, site: Site) -> None:
    for path, name in (
        ("/energy", "energy"), ("/neighbourhood", "neighbourhood"), ("/decides", "decides"),
        ("/account", "account"), ("/board/admissions", "board-admissions"), ("/board/grants", "board-grants"),
        ("/no-such-page", "not-found"),
    ):  # fmt: skip
        visit(browser, site, path, name)


def test_export_downloads_the_members_data(browser: WebDriver, site: Site) -> None:
    visit(browser, site, "/data", "data")
    export = json.loads(download(browser, site, "Download everything").read_text())
    assert export["member"]["id"] == site.member_id
    assert sum(len(r["kwh"]) for r in export["readings"]) == 48 * 31


def test_a_passkey_is_added_and_signs_the_member_in(browser: WebDriver, site: Site) -> None:
    """Chromium's virtual authenticator stands in for the phone's fingerprint reader."""
    browser.execute_cdp_cmd("WebAuthn.enable", {})
    authenticator = browser.execute_cdp_cmd("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True,
    }})  # fmt: skip
    try:
        browser.get(site.url + "/account")
        browser.find_element(By.ID, "passkey-add").click()
        status = browser.find_element(By.ID, "passkey-status")
        WebDriverWait(browser, 10).until(lambda _: status.text)
        assert "passkey is added" in status.text, status.text
        assert len(Accounts(site.node.store).passkeys(site.member_id)) == 1
        submit(browser, "form[action='/signout'] button")
        assert browser.current_url.startswith(site.url + "/signin")
        fill(browser, login="ana@example.org")
        browser.find_element(By.ID, "passkey-signin").click()
        WebDriverWait(browser, 10).until(lambda b: "/signin" not in b.current_url)
        assert browser.current_url.startswith(site.url + "/consent")
    finally:
        browser.execute_cdp_cmd(
            "WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator["authenticatorId"]}
        )


def test_erasure_removes_the_member_and_signs_them_out(browser: WebDriver, site: Site) -> None:
    browser.get(site.url + "/data")
    fill(browser, confirm="erase")
    submit(browser, "form[action='/data/erase'] button")
    checked(browser, "erased")
    assert site.node.store.get_member(site.member_id).erased
    browser.get(site.url + "/consent")
    assert browser.current_url == site.url + "/signin"


def test_the_accessibility_check_catches_an_unlabelled_field(browser: WebDriver, site: Site) -> None:
    browser.get(site.url + "/signin")
    browser.execute_script(
        "document.getElementById('login').removeAttribute('id')"
    )  # its label points nowhere
    with pytest.raises(AssertionError, match="label"):
        checked(browser, "broken-signin")
    (SCREENSHOTS / "broken-signin.png").unlink()
