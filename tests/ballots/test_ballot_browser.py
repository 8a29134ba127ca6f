"""The ballot pages in Debian's headless Chromium, with axe-core on each: the list, a ballot with
its impact, voting, and a closed ballot's result with the receipt check."""

from __future__ import annotations

import copy
import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from coopfed.node.auth import Principal
from coopfed.node.ballots import voting
from coopfed.node.ballots.tally import receipt_hash
from coopfed.node.governance import admission
from coopfed.node.portal.accounts import Accounts
from coopfed.node.storage.ballots import BallotRecord
from tests.portal.test_browser import PASSWORD, Site, browser, checked, fill, site, submit, visit

pytestmark = pytest.mark.integration
__all__ = ["browser", "site"]  # the fixtures


def test_a_member_reads_a_ballot_votes_and_checks_a_result(browser: WebDriver, site: Site) -> None:
    code = admission.invite(site.node.store, site.node.decision_log, site.node.policy, 14, "board:test")[1]
    browser.get(site.url + "/signup")
    fill(browser, display_name="Ana's house", invitation=code, login="ana@example.org", password=PASSWORD)
    submit(browser, "form[action='/signup'] button[type=submit]")
    member = Accounts(site.node.store).find("ana@example.org").member_id
    now = int(time.time())
    change = voting.Change("", {"coop": {"k_min": 6}})
    ballot = voting.propose(
        site.node, Principal("board", "test"), "Larger groups", "Release totals of 6 homes or more.",
        [change], None, None, now,
    )  # fmt: skip
    visit(browser, site, "/ballots", "ballots")
    browser.find_element(By.LINK_TEXT, "Larger groups").click()
    checked(browser, "ballot-open")
    assert "past decisions would change" in browser.find_element(By.ID, "main").text
    browser.find_element(By.ID, "choice-no").click()
    submit(browser, "form[action$='/vote'] button[type=submit]")
    assert "Your vote is cast" in browser.find_element(By.ID, "main").text
    checked(browser, "ballot-voted")

    # a ballot that closed: the same proposal, voted on by Ana with a receipt she kept
    closed = BallotRecord(
        "ballot-closed", copy.deepcopy(ballot.proposal), "board:test", now - 20, now - 10, now - 1
    )
    site.node.ballots.create_ballot(closed, "", [])
    site.node.ballots.cast_vote(
        closed.ballot_id, member, receipt_hash(closed.ballot_id, "kept-receipt"), "yes"
    )
    voting.tally(site.node, closed.ballot_id, now)
    visit(browser, site, "/ballots/ballot-closed", "ballot-closed")
    assert "1 of 1 members voted" in browser.find_element(By.ID, "main").text  # Ana is the only member
    fill(browser, receipt="kept-receipt")
    submit(browser, "form[action$='/check'] button[type=submit]")
    assert "Your vote is counted as: Yes: make the change" in browser.find_element(By.ID, "main").text
    checked(browser, "ballot-checked")
